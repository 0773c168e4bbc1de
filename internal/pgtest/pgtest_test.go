package pgtest_test

import (
	"strings"
	"testing"

	"github.com/linkd/linkd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMustStart(t *testing.T) {
	a, b := pgtest.MustStart(t), pgtest.MustStart(t)
	if a == b {
		t.Fatalf("two tests share database %s", a)
	}
	if !strings.HasPrefix(a, "postgres://postgres@127.0.0.1:") {
		t.Fatalf("DSN %q is not a loopback postgres URL", a)
	}
}
