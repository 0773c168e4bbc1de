package plaidemu_test

import (
	"net/http"
	"testing"

	"github.com/linkd/linkd/plaidemu"
)

func TestEmulator_SetFaults(t *testing.T) {
	e := MustStartEmulator(t, NewClock())
	body := map[string]any{"institution_id": "ins_109508", "initial_products": []string{"auth"}}

	t.Run("EveryRequestFails", func(t *testing.T) {
		e.SetFaults(plaidemu.Faults{ErrorRate: 1})
		for range 5 {
			WantError(t, Post(t, e, "/sandbox/public_token/create", body), http.StatusInternalServerError, "API_ERROR", "INTERNAL_SERVER_ERROR")
		}
		if n := e.Calls("/sandbox/public_token/create"); n != 0 {
			t.Errorf("served calls = %d, want 0: an injected failure does nothing", n)
		}
	})
	t.Run("GivenError", func(t *testing.T) {
		e.SetFaults(plaidemu.Faults{ErrorRate: 1, Error: plaidemu.Error{Type: plaidemu.TypeRateLimit, Code: "RATE_LIMIT"}})
		WantError(t, Post(t, e, "/sandbox/public_token/create", body), http.StatusTooManyRequests, "RATE_LIMIT_EXCEEDED", "RATE_LIMIT")
	})
	t.Run("Off", func(t *testing.T) {
		e.SetFaults(plaidemu.Faults{})
		WantOK(t, Post(t, e, "/sandbox/public_token/create", body))
	})
	t.Run("SomeFail", func(t *testing.T) {
		e.SetFaults(plaidemu.Faults{ErrorRate: 0.5})
		failed := 0
		for range 200 {
			if Post(t, e, "/sandbox/public_token/create", body).Status != http.StatusOK {
				failed++
			}
		}
		// 200 draws at p=0.5: outside 40..160 has probability < 1e-17.
		if failed < 40 || failed > 160 {
			t.Errorf("%d of 200 failed at rate 0.5", failed)
		}
		e.SetFaults(plaidemu.Faults{})
	})
}
