package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, math.MaxInt64} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || (v >= hi && hi > lo) {
			t.Errorf("value %d landed in bucket [%d, %d)", v, lo, hi)
		}
		if v > 256 && float64(hi-lo)/float64(v) > 0.01 {
			t.Errorf("bucket [%d, %d) of %d is wider than 1%%", lo, hi, v)
		}
	}
}

func TestQuantiles(t *testing.T) {
	t.Parallel()
	within := func(t *testing.T, name string, got, want time.Duration) {
		t.Helper()
		if d := math.Abs(float64(got-want)) / float64(want); d > 0.01 {
			t.Errorf("%s = %v, want %v within 1%%", name, got, want)
		}
	}

	t.Run("uniform", func(t *testing.T) {
		t.Parallel()
		var h histogram
		for i := 1; i <= 10000; i++ {
			h.Record(time.Duration(i) * time.Microsecond)
		}
		if h.Count() != 10000 {
			t.Fatalf("count = %d, want 10000", h.Count())
		}
		within(t, "p50", h.Quantile(0.50), 5000*time.Microsecond)
		within(t, "p99", h.Quantile(0.99), 9900*time.Microsecond)
		if h.Max() != 10*time.Millisecond {
			t.Errorf("max = %v, want exactly 10ms", h.Max())
		}
	})

	t.Run("one outlier shows in max and p100, not p99", func(t *testing.T) {
		t.Parallel()
		var h histogram
		for range 999 {
			h.Record(200 * time.Microsecond)
		}
		h.Record(3 * time.Second)
		within(t, "p50", h.Quantile(0.5), 200*time.Microsecond)
		within(t, "p99", h.Quantile(0.99), 200*time.Microsecond)
		if h.Max() != 3*time.Second || h.Quantile(1) != 3*time.Second {
			t.Errorf("max = %v, p100 = %v, want 3s", h.Max(), h.Quantile(1))
		}
	})

	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		var h histogram
		if h.Quantile(0.99) != 0 || h.Max() != 0 {
			t.Errorf("empty histogram: p99 %v max %v, want 0", h.Quantile(0.99), h.Max())
		}
	})
}
