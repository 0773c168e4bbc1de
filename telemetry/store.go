package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/linkd/linkd"
	storagev1 "github.com/linkd/linkd/gen/linkd/storage/v1"
	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// Store returns s with every operation timed into m (nil: not timed) and
// traced as a span "store.<Operation>" by t when t exports spans (nil or
// not exporting: no spans, not even no-op ones, which cost a context and
// a span name per transaction). Each
// operation of a linkd.Store is one transaction, so this is transaction
// latency for every backend; bbolt's group commits are measured beneath
// it too, by store.Options.OnCommit.
func Store(s linkd.Store, m *Metrics, t *Tracing) linkd.Store {
	o := observedStore{Store: s, metrics: m}
	if t != nil && t.Enabled() {
		o.tracer = t.Tracer()
	}
	return o
}

// observedStore is Store's linkd.Store. It embeds the store so that Close
// and anything else not a transaction pass through. The methods below are
// one per transaction of linkd.Store, each the same three lines.
type observedStore struct {
	linkd.Store
	metrics *Metrics
	tracer  trace.Tracer
}

// begin starts op's span and clock; done ends both with op's error.
func (s observedStore) begin(ctx context.Context, op string) (context.Context, func(error)) {
	start := time.Now()
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.tracer.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient))
	}
	return ctx, func(err error) {
		if s.metrics != nil {
			s.metrics.observeStoreOp(op, err, time.Since(start))
		}
		if span != nil {
			if err != nil {
				span.SetStatus(codes.Error, linkd.ErrorCode(err))
			}
			span.End()
		}
	}
}

func (s observedStore) PutLinkToken(ctx context.Context, t *storagev1.StoredLinkToken) error {
	ctx, done := s.begin(ctx, "PutLinkToken")
	err := s.Store.PutLinkToken(ctx, t)
	done(err)
	return err
}

func (s observedStore) GetLinkToken(ctx context.Context, linkToken string) (*storagev1.StoredLinkToken, error) {
	ctx, done := s.begin(ctx, "GetLinkToken")
	r0, err := s.Store.GetLinkToken(ctx, linkToken)
	done(err)
	return r0, err
}

func (s observedStore) RenewLinkToken(ctx context.Context, dead string, fresh *storagev1.StoredLinkToken, now time.Time) (*storagev1.StoredLinkToken, error) {
	ctx, done := s.begin(ctx, "RenewLinkToken")
	r0, err := s.Store.RenewLinkToken(ctx, dead, fresh, now)
	done(err)
	return r0, err
}

func (s observedStore) LinkTokenRenewal(ctx context.Context, dead string, now time.Time) (*storagev1.StoredLinkToken, error) {
	ctx, done := s.begin(ctx, "LinkTokenRenewal")
	r0, err := s.Store.LinkTokenRenewal(ctx, dead, now)
	done(err)
	return r0, err
}

func (s observedStore) UpdateLinkSession(ctx context.Context, linkSessionID string, fn func(s *linkdv1.LinkSession) (bool, error)) (*linkdv1.LinkSession, error) {
	ctx, done := s.begin(ctx, "UpdateLinkSession")
	r0, err := s.Store.UpdateLinkSession(ctx, linkSessionID, fn)
	done(err)
	return r0, err
}

func (s observedStore) SettleLinkToken(ctx context.Context, linkToken string, settled *storagev1.LinkTokenSettlement) error {
	ctx, done := s.begin(ctx, "SettleLinkToken")
	err := s.Store.SettleLinkToken(ctx, linkToken, settled)
	done(err)
	return err
}

func (s observedStore) GetLinkSession(ctx context.Context, linkSessionID string) (*linkdv1.LinkSession, error) {
	ctx, done := s.begin(ctx, "GetLinkSession")
	r0, err := s.Store.GetLinkSession(ctx, linkSessionID)
	done(err)
	return r0, err
}

func (s observedStore) LinkSessions(ctx context.Context, since, until time.Time, pageToken string, limit int) ([]*linkdv1.LinkSession, string, error) {
	ctx, done := s.begin(ctx, "LinkSessions")
	r0, r1, err := s.Store.LinkSessions(ctx, since, until, pageToken, limit)
	done(err)
	return r0, r1, err
}

func (s observedStore) ClaimExchange(ctx context.Context, c linkd.ExchangeClaim) (linkd.ClaimResult, error) {
	ctx, done := s.begin(ctx, "ClaimExchange")
	r0, err := s.Store.ClaimExchange(ctx, c)
	done(err)
	return r0, err
}

func (s observedStore) RenewExchangeClaim(ctx context.Context, publicToken, owner string, now time.Time, ttl time.Duration) error {
	ctx, done := s.begin(ctx, "RenewExchangeClaim")
	err := s.Store.RenewExchangeClaim(ctx, publicToken, owner, now, ttl)
	done(err)
	return err
}

func (s observedStore) ReleaseExchangeClaim(ctx context.Context, publicToken, owner string, outcomeUnknown bool) error {
	ctx, done := s.begin(ctx, "ReleaseExchangeClaim")
	err := s.Store.ReleaseExchangeClaim(ctx, publicToken, owner, outcomeUnknown)
	done(err)
	return err
}

func (s observedStore) ItemForPublicToken(ctx context.Context, publicToken string) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "ItemForPublicToken")
	r0, err := s.Store.ItemForPublicToken(ctx, publicToken)
	done(err)
	return r0, err
}

func (s observedStore) PutItem(ctx context.Context, n linkd.NewItem) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "PutItem")
	r0, err := s.Store.PutItem(ctx, n)
	done(err)
	return r0, err
}

func (s observedStore) GetItem(ctx context.Context, itemID string) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "GetItem")
	r0, err := s.Store.GetItem(ctx, itemID)
	done(err)
	return r0, err
}

func (s observedStore) ListItems(ctx context.Context, clientUserID string) ([]*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "ListItems")
	r0, err := s.Store.ListItems(ctx, clientUserID)
	done(err)
	return r0, err
}

func (s observedStore) ItemsAtInstitution(ctx context.Context, institutionID string) ([]*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "ItemsAtInstitution")
	r0, err := s.Store.ItemsAtInstitution(ctx, institutionID)
	done(err)
	return r0, err
}

func (s observedStore) UpdateItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "UpdateItem")
	r0, err := s.Store.UpdateItem(ctx, itemID, fn)
	done(err)
	return r0, err
}

func (s observedStore) AccessToken(ctx context.Context, itemID string) (linkd.AccessToken, error) {
	ctx, done := s.begin(ctx, "AccessToken")
	r0, err := s.Store.AccessToken(ctx, itemID)
	done(err)
	return r0, err
}

func (s observedStore) DeleteItem(ctx context.Context, itemID string) error {
	ctx, done := s.begin(ctx, "DeleteItem")
	err := s.Store.DeleteItem(ctx, itemID)
	done(err)
	return err
}

func (s observedStore) DueItemRefreshes(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ctx, done := s.begin(ctx, "DueItemRefreshes")
	r0, err := s.Store.DueItemRefreshes(ctx, now, limit)
	done(err)
	return r0, err
}

func (s observedStore) DeferItemRefresh(ctx context.Context, itemID string, at time.Time) error {
	ctx, done := s.begin(ctx, "DeferItemRefresh")
	err := s.Store.DeferItemRefresh(ctx, itemID, at)
	done(err)
	return err
}

func (s observedStore) UpdateRefreshedItem(ctx context.Context, itemID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "UpdateRefreshedItem")
	r0, err := s.Store.UpdateRefreshedItem(ctx, itemID, fn)
	done(err)
	return r0, err
}

func (s observedStore) RecordWebhook(ctx context.Context, w *storagev1.StoredWebhook, deliveryID string, fn func(item *linkdv1.Item) (bool, error)) (*linkdv1.Item, error) {
	ctx, done := s.begin(ctx, "RecordWebhook")
	r0, err := s.Store.RecordWebhook(ctx, w, deliveryID, fn)
	done(err)
	return r0, err
}

func (s observedStore) ListWebhooks(ctx context.Context, pageToken string, limit int) ([]*storagev1.StoredWebhook, string, error) {
	ctx, done := s.begin(ctx, "ListWebhooks")
	r0, r1, err := s.Store.ListWebhooks(ctx, pageToken, limit)
	done(err)
	return r0, r1, err
}

func (s observedStore) Prune(ctx context.Context, c linkd.PruneCutoffs) (linkd.PruneResult, error) {
	ctx, done := s.begin(ctx, "Prune")
	r0, err := s.Store.Prune(ctx, c)
	done(err)
	return r0, err
}

func (s observedStore) ResealAccessTokens(ctx context.Context, after string, batch int) (int, string, error) {
	ctx, done := s.begin(ctx, "ResealAccessTokens")
	r0, r1, err := s.Store.ResealAccessTokens(ctx, after, batch)
	done(err)
	return r0, r1, err
}

func (s observedStore) SealedKeyIDs(ctx context.Context) (map[string]string, error) {
	ctx, done := s.begin(ctx, "SealedKeyIDs")
	r0, err := s.Store.SealedKeyIDs(ctx)
	done(err)
	return r0, err
}

func (s observedStore) TryLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	ctx, done := s.begin(ctx, "TryLease")
	r0, err := s.Store.TryLease(ctx, name, owner, now, ttl)
	done(err)
	return r0, err
}

func (s observedStore) SetLeaseCursor(ctx context.Context, name, owner, cursor string) (bool, error) {
	ctx, done := s.begin(ctx, "SetLeaseCursor")
	r0, err := s.Store.SetLeaseCursor(ctx, name, owner, cursor)
	done(err)
	return r0, err
}

func (s observedStore) LeaseCursor(ctx context.Context, name string) (string, error) {
	ctx, done := s.begin(ctx, "LeaseCursor")
	r0, err := s.Store.LeaseCursor(ctx, name)
	done(err)
	return r0, err
}

func (s observedStore) Check(ctx context.Context) error {
	ctx, done := s.begin(ctx, "Check")
	err := s.Store.Check(ctx)
	done(err)
	return err
}
