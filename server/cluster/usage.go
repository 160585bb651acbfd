package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"gatehouse"
)

// drainScript takes every node's reported calls per key and day at once.
var drainScript = redis.NewScript(`
local v = redis.call('HGETALL', 'gatehouse:usage')
redis.call('DEL', 'gatehouse:usage')
return v`)

// DrainUsage takes the calls every node reported per key and day, for the
// leader's usage history; what it returns is gone from Redis, so a caller
// that cannot keep it hands it back with RestoreUsage.
func (q *Quotas) DrainUsage(ctx context.Context) ([]gatehouse.Counter, error) {
	if !q.up.Load() {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	q.redisCalls.Inc()
	v, err := drainScript.Run(ctx, q.rdb, nil).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("drain usage: %w", err)
	}
	now := q.clockMs()
	cs := make([]gatehouse.Counter, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		id, day, ok := strings.Cut(v[i], "|")
		n, err := strconv.ParseInt(v[i+1], 10, 64)
		if !ok || err != nil || len(day) != 8 {
			continue
		}
		cs = append(cs, gatehouse.Counter{ClientID: id, Period: day[:4] + "-" + day[4:6] + "-" + day[6:],
			Calls: n, LastUsed: now})
	}
	return cs, nil
}

// RestoreUsage gives drained calls back to Redis, to be drained again.
func (q *Quotas) RestoreUsage(ctx context.Context, cs []gatehouse.Counter) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	pipe := q.rdb.Pipeline()
	for _, c := range cs {
		pipe.HIncrBy(ctx, "gatehouse:usage", c.ClientID+"|"+strings.ReplaceAll(c.Period, "-", ""), c.Calls)
	}
	q.redisCalls.Inc()
	if _, err := pipe.Exec(ctx); err != nil {
		q.log.Error("usage history lost: neither SQLite nor Redis took it", "err", err, "counters", len(cs))
	}
}
