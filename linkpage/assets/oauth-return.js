// The bank has returned to Link in the popup Link opened: close it. The
// Link tab that opened it learns of the authorization from linkd
// (api/oauth_status) and carries on.
window.close();
