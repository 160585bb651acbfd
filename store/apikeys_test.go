package store

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse"
)

func bulkKeys(prefix string, n int) []gatehouse.APIKey {
	ks := make([]gatehouse.APIKey, n)
	for i := range ks {
		ks[i] = gatehouse.DefaultAPIKey()
		ks[i].ClientID = fmt.Sprintf("%s%06d", prefix, i)
		ks[i].ClientName = fmt.Sprintf("bulk %d", i)
		ks[i].AuthorizedEntities = []string{"group_g" + fmt.Sprint(i%3)}
	}
	return ks
}

func TestCreateAPIKeysBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedKey(t, s, "existing")

	seedGroups(t, s, "g0", "g1", "g2")
	f := &recorder{}
	f.rev, _ = s.Revision(ctx)
	s.SetFollower(f)

	t.Run("one invalid key writes none", func(t *testing.T) {
		ks := bulkKeys("bad", 100)
		ks[37].DailyQuota = -1
		before := rowCounts(t, s)
		wantErr(t, s.CreateAPIKeys(ctx, ks), gatehouse.KindInvalid, "[37].dailyQuota")
		if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
			t.Fatalf("rows changed: %v -> %v", before, after)
		}
	})
	t.Run("duplicate inside the batch", func(t *testing.T) {
		ks := bulkKeys("dup", 100)
		ks[80].ClientID = ks[3].ClientID
		before := rowCounts(t, s)
		e := wantErr(t, s.CreateAPIKeys(ctx, ks), gatehouse.KindConflict, "")
		if !strings.Contains(e.Message, ks[3].ClientID) {
			t.Errorf("message %q does not name %s", e.Message, ks[3].ClientID)
		}
		if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
			t.Fatalf("rows changed: %v -> %v", before, after)
		}
	})
	t.Run("duplicate against the table rolls back the rest", func(t *testing.T) {
		ks := bulkKeys("clash", 100)
		ks[99].ClientID = "existing"
		before := rowCounts(t, s)
		e := wantErr(t, s.CreateAPIKeys(ctx, ks), gatehouse.KindConflict, "")
		if !strings.Contains(e.Message, "existing") {
			t.Errorf("message %q does not name the client id", e.Message)
		}
		if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
			t.Fatalf("rows changed: %v -> %v", before, after)
		}
	})
	t.Run("too many", func(t *testing.T) {
		wantErr(t, s.CreateAPIKeys(ctx, make([]gatehouse.APIKey, gatehouse.MaxBulkKeys+1)), gatehouse.KindInvalid, "-")
	})
	if len(f.changes) != 0 {
		t.Fatalf("failed writes reached the follower: %v", f.changes)
	}
	t.Run("a dangling entity writes none", func(t *testing.T) {
		ks := bulkKeys("dangling", 10)
		ks[7].AuthorizedEntities = []string{"group_nope"}
		before := rowCounts(t, s)
		wantErr(t, s.CreateAPIKeys(ctx, ks), gatehouse.KindInvalid, "[7].authorizedEntities")
		if after := rowCounts(t, s); !reflect.DeepEqual(before, after) {
			t.Fatalf("rows changed: %v -> %v", before, after)
		}
	})

	t.Run("all written, defaults filled in place, one revision", func(t *testing.T) {
		ks := bulkKeys("ok", 100)
		ks[5].ClientID, ks[5].ClientSecret = "", ""
		must(t, s.CreateAPIKeys(ctx, ks))
		if len(ks[5].ClientID) != 16 || len(ks[5].ClientSecret) != 64 {
			t.Fatalf("defaults not filled: %+v", ks[5])
		}
		n, err := s.CountAPIKeys(ctx)
		must(t, err)
		if n != 101 {
			t.Fatalf("CountAPIKeys = %d, want 101", n)
		}
		if len(f.changes) != 100 || f.changes[0].ID != ks[0].ClientID || f.changes[99].ID != ks[99].ClientID ||
			f.changes[0].Revision != f.changes[99].Revision {
			t.Fatalf("follower got %d changes (%v...), want 100 of one revision", len(f.changes), f.changes[:min(3, len(f.changes))])
		}
		got, err := s.GetAPIKey(ctx, ks[42].ClientID)
		must(t, err)
		if !reflect.DeepEqual(got, ks[42]) {
			t.Fatalf("GetAPIKey = %+v, want %+v", got, ks[42])
		}
		// Creation order is the batch's order.
		list, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{}, gatehouse.Page{Page: 1, PageSize: 3})
		must(t, err)
		if list[0].ClientID != "existing" || list[1].ClientID != ks[0].ClientID || list[2].ClientID != ks[1].ClientID {
			t.Fatalf("order = %s, %s, %s", list[0].ClientID, list[1].ClientID, list[2].ClientID)
		}
	})
}

func TestCreateAPIKeysBulkMax(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroups(t, s, "g0", "g1", "g2")
	ks := bulkKeys("max", gatehouse.MaxBulkKeys)
	start := time.Now()
	must(t, s.CreateAPIKeys(ctx, ks))
	t.Logf("CreateAPIKeys(%d) took %v", len(ks), time.Since(start))
	n, err := s.CountAPIKeys(ctx)
	must(t, err)
	if n != gatehouse.MaxBulkKeys {
		t.Fatalf("CountAPIKeys = %d", n)
	}
}

func TestListAPIKeysFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroup(t, s, "g1")
	seedGroup(t, s, "g2")
	seedService(t, s, "s1", "g1")
	seedService(t, s, "s2", "g2")

	seedKey(t, s, "k1", "group_g1")
	seedKey(t, s, "k2", "service_s1")
	seedKey(t, s, "k3", "group_g2", "service_s1")
	seedKey(t, s, "k4", "service_s2")
	k5 := gatehouse.DefaultAPIKey()
	k5.ClientID, k5.ClientName, k5.Enabled = "k5", "Mobile APP", false
	k5.AuthorizedEntities = []string{"group_g1"}
	must(t, s.CreateAPIKey(ctx, &k5))
	seedKey(t, s, "k6")

	yes, no := true, false
	tests := []struct {
		name      string
		f         gatehouse.KeyFilter
		p         gatehouse.Page
		want      []string
		wantTotal int
	}{
		{"all", gatehouse.KeyFilter{}, gatehouse.Page{}, []string{"k1", "k2", "k3", "k4", "k5", "k6"}, 6},
		{"group", gatehouse.KeyFilter{GroupID: "g1"}, gatehouse.Page{}, []string{"k1", "k5"}, 2},
		{"service or its group", gatehouse.KeyFilter{ServiceID: "s1"}, gatehouse.Page{}, []string{"k1", "k2", "k3", "k5"}, 4},
		{"other service", gatehouse.KeyFilter{ServiceID: "s2"}, gatehouse.Page{}, []string{"k3", "k4"}, 2},
		{"enabled", gatehouse.KeyFilter{Enabled: &yes}, gatehouse.Page{}, []string{"k1", "k2", "k3", "k4", "k6"}, 5},
		{"disabled in group", gatehouse.KeyFilter{GroupID: "g1", Enabled: &no}, gatehouse.Page{}, []string{"k5"}, 1},
		{"q name any case", gatehouse.KeyFilter{Q: "mobile app"}, gatehouse.Page{}, []string{"k5"}, 1},
		{"q client id", gatehouse.KeyFilter{Q: "K4"}, gatehouse.Page{}, []string{"k4"}, 1},
		{"q no match", gatehouse.KeyFilter{Q: "%"}, gatehouse.Page{}, []string{}, 0},
		{"service paged", gatehouse.KeyFilter{ServiceID: "s1"}, gatehouse.Page{Page: 2, PageSize: 3}, []string{"k5"}, 4},
		{"past the end", gatehouse.KeyFilter{}, gatehouse.Page{Page: 9, PageSize: 3}, []string{}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, total, err := s.ListAPIKeys(ctx, tt.f, tt.p)
			must(t, err)
			if ks == nil {
				t.Fatal("nil slice, want []")
			}
			got := []string{}
			for _, k := range ks {
				got = append(got, k.ClientID)
			}
			if !reflect.DeepEqual(got, tt.want) || total != tt.wantTotal {
				t.Errorf("got %v total %d, want %v total %d", got, total, tt.want, tt.wantTotal)
			}
		})
	}
	_, _, err := s.ListAPIKeys(ctx, gatehouse.KeyFilter{ServiceID: "ghost"}, gatehouse.Page{})
	wantErr(t, err, gatehouse.KindNotFound, "")
}

func TestScanKeyAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroups(t, s, "g1")
	seedService(t, s, "s1", "g1")
	until := int64(1234)
	a := gatehouse.APIKey{ClientID: "a", ClientSecret: "sa", ClientName: "not loaded", Description: "not loaded",
		AuthorizedEntities: []string{"group_g1", "service_s1"}, Enabled: true, AllowClientIDOnly: true,
		ThrottlingQuota: 1, DailyQuota: 2, MonthlyQuota: 3, ValidUntil: &until,
		Metadata: map[string]string{"x": "y"}, Tags: []string{"t"}}
	b := gatehouse.APIKey{ClientID: "b", ClientSecret: "sb", ReadOnly: true, AuthorizedEntities: []string{"group_g1"}}
	must(t, s.CreateAPIKey(ctx, &a))
	must(t, s.CreateAPIKey(ctx, &b))

	got := map[string]gatehouse.APIKey{}
	must(t, s.ScanKeyAuth(ctx, func(k *gatehouse.APIKey) error {
		got[k.ClientID] = *k
		return nil
	}))
	wantA := a
	wantA.ClientName, wantA.Description, wantA.Metadata, wantA.Tags = "", "", nil, nil
	wantB := b
	wantB.Metadata, wantB.Tags = nil, nil
	wantA.Rotation, wantB.Rotation = gatehouse.Rotation{}, gatehouse.Rotation{} // not what authentication needs
	if !reflect.DeepEqual(got["a"], wantA) || !reflect.DeepEqual(got["b"], wantB) {
		t.Fatalf("ScanKeyAuth =\n%+v\n%+v\nwant\n%+v\n%+v", got["a"], got["b"], wantA, wantB)
	}
	// Keys kept from earlier calls are not overwritten by later ones.
	if *got["a"].ValidUntil != 1234 || got["a"].AuthorizedEntities[1] != "service_s1" {
		t.Fatalf("kept key changed: %+v", got["a"])
	}

	stop := fmt.Errorf("stop")
	calls := 0
	err := s.ScanKeyAuth(ctx, func(*gatehouse.APIKey) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ScanKeyAuth with failing fn = %v after %d calls", err, calls)
	}
}

// TestScanKeyAuthLoad logs how long loading 100,000 keys takes; the contract's
// bound (1,000,000 in 5 s) is checked by the lead's end-to-end measurement.
func TestScanKeyAuthLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100,000 keys")
	}
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	seedGroups(t, s, "g0", "g1", "g2")
	total := 100_000
	if raceEnabled {
		total = 20_000 // the race detector makes the number meaningless; keep the suite fast
	}
	start := time.Now()
	for i := 0; i < total/gatehouse.MaxBulkKeys; i++ {
		must(t, s.CreateAPIKeys(ctx, bulkKeys(fmt.Sprintf("b%02d-", i), gatehouse.MaxBulkKeys)))
	}
	t.Logf("CreateAPIKeys: %d keys in %v", total, time.Since(start))

	start = time.Now()
	n := 0
	must(t, s.ScanKeyAuth(ctx, func(k *gatehouse.APIKey) error {
		if len(k.AuthorizedEntities) != 1 {
			return fmt.Errorf("key %s has entities %v", k.ClientID, k.AuthorizedEntities)
		}
		n++
		return nil
	}))
	el := time.Since(start)
	if n != total {
		t.Fatalf("scanned %d keys, want %d", n, total)
	}
	t.Logf("ScanKeyAuth: %d keys in %v (%.0f ns/key)", n, el, float64(el.Nanoseconds())/float64(n))
}

func BenchmarkScanKeyAuth(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 10; i++ {
		if err := s.CreateAPIKeys(ctx, bulkKeys(fmt.Sprintf("b%02d-", i), gatehouse.MaxBulkKeys)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := s.ScanKeyAuth(ctx, func(*gatehouse.APIKey) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/key")
}

func TestDecodeEntities(t *testing.T) {
	t.Parallel()
	tests := []string{
		`[]`, `["group_a"]`, `["group_a","service_b"]`, `["a,b","c"]`, `["\u003c"]`, `[ "x" ]`, `null`,
	}
	intern := map[string]string{}
	for _, in := range tests {
		got, err := decodeEntities(in, intern)
		if err != nil {
			t.Errorf("decodeEntities(%s): %v", in, err)
			continue
		}
		want := []string{}
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeEntities(%s) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{`[`, `["a"`, `["a",]`, `["a"x]`, `[1]`, `{}`} {
		if got, err := decodeEntities(bad, intern); err == nil {
			t.Errorf("decodeEntities(%s) = %q, want an error", bad, got)
		}
	}
}
