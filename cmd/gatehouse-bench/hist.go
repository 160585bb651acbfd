package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records latencies with a fixed memory footprint and a relative
// error under 1%: values below 128 ns get one bucket each, and every power of
// two above is split into 128 linear sub-buckets (the HdrHistogram layout).
// Record is safe for concurrent use: counts are atomic, so the open-loop
// workers share one histogram without a lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // sub-buckets per power of two
	histBuckets = (64 - histSubBits + 1) * histSub
)

func bucketOf(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - histSubBits - 1 // v>>exp lies in [128, 255]
	return (exp+1)*histSub + int(v>>exp) - histSub
}

// bucketRange is the half-open range [lo, hi) of values bucket i holds.
func bucketRange(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	exp := i/histSub - 1
	lo = int64(i%histSub+histSub) << exp
	return lo, lo + 1<<exp
}

func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *histogram) Count() uint64 { return h.total.Load() }

func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at quantile q (0 < q <= 1): the midpoint of the
// bucket holding the ceil(q*n)-th smallest sample, never above the maximum,
// and the exact maximum for the largest sample.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.Max() // the largest sample is known exactly
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			mid := lo + (hi-lo-1)/2
			return min(time.Duration(mid), h.Max())
		}
	}
	return h.Max()
}
