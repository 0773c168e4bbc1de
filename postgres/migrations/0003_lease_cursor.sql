-- Where the job holding a lease stands in its walk (the reconcile job: the
-- last item_id it finished; '' at the start of a pass), kept across owners
-- so that a process taking the lease over resumes there.
ALTER TABLE linkd_leases ADD COLUMN cursor text NOT NULL DEFAULT '';
