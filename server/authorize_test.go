package server

import (
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

// TestMethodAccess_EveryMethod keeps the authorization table whole: a new
// RPC must be given its access before it ships, and no entry may name a
// method that does not exist.
func TestMethodAccess_EveryMethod(t *testing.T) {
	names := map[string]bool{}
	for _, m := range linkdv1.LinkService_ServiceDesc.Methods {
		full := "/" + linkdv1.LinkService_ServiceDesc.ServiceName + "/" + m.MethodName
		names[full] = true
		if _, ok := methodAccess[full]; !ok {
			t.Errorf("%s has no entry in methodAccess", full)
		}
	}
	for m := range methodAccess {
		if !names[m] {
			t.Errorf("methodAccess names %s, which LinkService does not have", m)
		}
	}
}

func TestUserMayCall(t *testing.T) {
	for _, tt := range []struct {
		method string
		want   bool
	}{
		{linkdv1.LinkService_SubmitRedirect_FullMethodName, true},
		{linkdv1.LinkService_GetLinkConversion_FullMethodName, false},
		{linkdv1.LinkService_FireSandboxWebhook_FullMethodName, false},
		{"/linkd.v1.LinkService/NotYetListed", false},
	} {
		if got := userMayCall(tt.method); got != tt.want {
			t.Errorf("userMayCall(%s) = %v, want %v", tt.method, got, tt.want)
		}
	}
}
