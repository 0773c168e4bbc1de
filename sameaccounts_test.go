package linkd

import (
	"testing"

	linkdv1 "github.com/linkd/linkd/gen/linkd/v1"
)

func TestSameAccounts(t *testing.T) {
	acc := func(name, mask string) *linkdv1.Account { return &linkdv1.Account{Name: name, Mask: mask} }
	checking, saving := acc("Checking", "0000"), acc("Saving", "1111")
	tests := []struct {
		name string
		a, b []*linkdv1.Account
		want bool
	}{
		{"SameAccount", []*linkdv1.Account{checking, saving}, []*linkdv1.Account{acc("Saving", "1111")}, true},
		{"OtherAccount", []*linkdv1.Account{checking}, []*linkdv1.Account{saving}, false},
		{"SameNameOtherMask", []*linkdv1.Account{checking}, []*linkdv1.Account{acc("Checking", "9999")}, false},
		{"NoMaskFallsBackToInstitution", []*linkdv1.Account{checking}, []*linkdv1.Account{acc("Checking", "")}, true},
		{"NoAccountsFallsBackToInstitution", nil, []*linkdv1.Account{checking}, true},
		// One named account is enough to compare by account.
		{"SomeNamed", []*linkdv1.Account{checking}, []*linkdv1.Account{acc("", "0000"), saving}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SameAccounts(tt.a, tt.b); got != tt.want {
				t.Errorf("SameAccounts = %v, want %v", got, tt.want)
			}
			if got := SameAccounts(tt.b, tt.a); got != tt.want {
				t.Errorf("SameAccounts reversed = %v, want %v", got, tt.want)
			}
		})
	}
}
