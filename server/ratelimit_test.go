package server

import (
	"testing"
	"time"
)

func TestUserLimiter_Take(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := newUserLimiter(RateLimit{PerSecond: 2, Burst: 3}, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.take("alice"); !ok {
			t.Fatalf("call %d within the burst refused", i)
		}
	}
	ok, wait := l.take("alice")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("call past the burst = %v, wait %v; want refused, wait 500ms", ok, wait)
	}
	if ok, _ := l.take("bob"); !ok {
		t.Fatal("another user shares alice's bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.take("alice"); !ok {
		t.Fatal("call after the refill refused")
	}
	if ok, _ := l.take("alice"); ok {
		t.Fatal("a refill of one call allowed two")
	}
}

func TestUserLimiter_ForgetsFullBuckets(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := newUserLimiter(RateLimit{PerSecond: 1, Burst: 1}, func() time.Time { return now })
	l.take("alice")
	now = now.Add(time.Second)
	l.forgetFull(now)
	if len(l.buckets) != 0 {
		t.Fatalf("buckets = %d after every one refilled, want 0", len(l.buckets))
	}
}
