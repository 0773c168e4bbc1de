package redirect_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/linkd/linkd/redirect"
)

// fiveAccounts is a connected redirect with five accounts, the accounts
// JSON.stringify'd and encodeURIComponent'd as Link's JavaScript does.
var fiveAccounts = conn + "&institution_id=ins_109508&institution_name=First%20Platypus%20Bank&accounts=" +
	strings.ReplaceAll(url.QueryEscape(`[`+
		`{"_id":"BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp","meta":{"name":"Plaid Checking","number":"0000"},"type":"depository","subtype":"checking","verification_status":null,"class_type":null},`+
		`{"_id":"dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK","meta":{"name":"Plaid Saving","number":"1111"},"type":"depository","subtype":"savings","verification_status":null,"class_type":null},`+
		`{"_id":"lPNjeW1nR6CDn5okmGQ6hEpMo4lLNoSrzqDje","meta":{"name":"Plaid CD","number":"2222"},"type":"depository","subtype":"cd","verification_status":null,"class_type":null},`+
		`{"_id":"NVBZnLWxBvSW5bMjyZJxtx4qGNl6XEhvNJnpX","meta":{"name":"Plaid Credit Card","number":"3333"},"type":"credit","subtype":"credit card","verification_status":null,"class_type":null},`+
		`{"_id":"w1GZz5VnpeSmAM4KjGoWSXdLj4ZEJZhWP6qvN","meta":{"name":"Plaid Money Market","number":"4444"},"type":"depository","subtype":"money market","verification_status":null,"class_type":null}`+
		`]`), "+", "%20") + "&link_session_id=356dbb28-7f98-44d1-8e6d-0cec580f3171"

// benchInputs are the redirects both benchmarks parse, by sub-benchmark name.
var benchInputs = []struct{ name, in string }{
	{"Seed", docConnected},
	{"FiveAccounts", fiveAccounts},
	{"Exit", docExit},
	{"Event", docEvent},
}

// BenchmarkParse measures redirect.Parse on Plaid's examples and on a
// connected redirect with five accounts. BenchmarkNaive runs the same inputs
// through the stdlib approach, so that one run gives the ratio.
func BenchmarkParse(b *testing.B) {
	for _, bi := range benchInputs {
		b.Run(bi.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bi.in)))
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := redirect.Parse(bi.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNaive is the baseline: url.Parse, Query() into url.Values, and
// the accounts JSON unmarshalled into a generic tree. It checks and types
// nothing, so it is a floor for what a correct parser could cost with the
// stdlib alone.
func BenchmarkNaive(b *testing.B) {
	for _, bi := range benchInputs {
		b.Run(bi.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bi.in)))
			defer reportCPU(b)()
			for b.Loop() {
				if err := naiveParse(bi.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU starts measuring CPU time; the function it returns reports it as
// cpu-ns/op. The machine is shared: ns/op, wall time, grows with everyone's
// load, while CPU time mostly grows only with ours.
func reportCPU(b *testing.B) func() {
	start, ok := cpuTime()
	return func() {
		end, _ := cpuTime()
		if ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func naiveParse(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	q := u.Query()
	if s := strings.Trim(q.Get("accounts"), "'"); s != "" {
		var accounts any
		if err := json.Unmarshal([]byte(s), &accounts); err != nil {
			return err
		}
	}
	return nil
}
