package server

import (
	"net/http"
	"strconv"
	"time"

	"gatehouse/server/keys"
	"gatehouse/server/quota"
)

// Response header names the gateway sets, in canonical form.
const (
	hdrRequestID       = "Otoroshi-Request-Id"
	hdrProxyLatency    = "Otoroshi-Proxy-Latency"
	hdrUpstreamLatency = "Otoroshi-Upstream-Latency"
	hdrServerTiming    = "Server-Timing"
	hdrDailyRemaining  = "Otoroshi-Daily-Calls-Remaining"
	hdrMonthlyRemain   = "Otoroshi-Monthly-Calls-Remaining"
	hdrRateLimit       = "Ratelimit-Limit"
	hdrRateRemaining   = "Ratelimit-Remaining"
)

// maxGatewayHeaders is how many headers gatewayHeaders sets at most.
const maxGatewayHeaders = 8

// gatewayHeaders are the values of the gateway's own response headers.
// write sets them on a header with one allocation in all (one string holding
// every number; the value slices are carved from vals, the exchange's array)
// instead of two per header: these go on every answer.
type gatewayHeaders struct {
	reqID           string
	latency         bool // proxied answer: latency and Server-Timing headers
	proxy, upstream time.Duration
	quota           bool // the request presented a valid key
	key             *keys.Key
	decision        *quota.Decision
	vals            []string // backing for the value slices, len maxGatewayHeaders
}

func (g *gatewayHeaders) write(h http.Header) {
	var buf [160]byte
	b := buf[:0]
	var ends [7]int
	n := 0
	mark := func() { ends[n] = len(b); n++ }
	if g.latency {
		b = strconv.AppendInt(b, g.proxy.Milliseconds(), 10)
		mark()
		b = strconv.AppendInt(b, g.upstream.Milliseconds(), 10)
		mark()
		b = append(b, "proxy;dur="...)
		b = strconv.AppendFloat(b, float64(g.proxy.Microseconds())/1000, 'f', 3, 64)
		b = append(b, ", upstream;dur="...)
		b = strconv.AppendFloat(b, float64(g.upstream.Microseconds())/1000, 'f', 3, 64)
		mark()
	}
	if g.quota {
		b = strconv.AppendInt(b, max(g.decision.DailyRemaining, 0), 10)
		mark()
		b = strconv.AppendInt(b, max(g.decision.MonthlyRemaining, 0), 10)
		mark()
		b = strconv.AppendInt(b, g.key.Throttling, 10)
		mark()
		b = strconv.AppendInt(b, max(g.decision.RateRemaining, 0), 10)
		mark()
	}
	s := string(b)
	vals := g.vals[:n+1]
	vals[0] = g.reqID
	for i := range n {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		vals[i+1] = s[start:ends[i]]
	}
	// Three-index slices: an append by a later writer copies instead of
	// overwriting the neighbouring header's value.
	set := func(name string, i int) { h[name] = vals[i : i+1 : i+1] }
	set(hdrRequestID, 0)
	i := 1
	if g.latency {
		set(hdrProxyLatency, i)
		set(hdrUpstreamLatency, i+1)
		set(hdrServerTiming, i+2)
		i += 3
	}
	if g.quota {
		set(hdrDailyRemaining, i)
		set(hdrMonthlyRemain, i+1)
		set(hdrRateLimit, i+2)
		set(hdrRateRemaining, i+3)
	}
}

// ownHeaders are removed from an upstream's answer so that the gateway's
// values are the only ones the client sees.
var ownHeaders = []string{hdrRequestID, hdrProxyLatency, hdrUpstreamLatency, hdrServerTiming,
	hdrDailyRemaining, hdrMonthlyRemain, hdrRateLimit, hdrRateRemaining, hdrRotationAt, hdrRotationRemaining}
