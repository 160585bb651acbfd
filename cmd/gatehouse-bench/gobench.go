package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// goBench holds the in-process benchmarks `make bench` runs before the
// table (`go test -bench` output): benchmark name, without the -GOMAXPROCS
// suffix, to unit to value (ns/op, allocs/op, and custom metrics).
type goBench map[string]map[string]float64

// readGoBench parses a file of `go test -bench` output; lines that are not
// results are ignored.
func readGoBench(path string) (goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := goBench{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, vals, ok := parseBenchLine(sc.Text())
		if ok {
			out[name] = vals
		}
	}
	return out, sc.Err()
}

// parseBenchLine reads "BenchmarkX/sub-2  1000  123 ns/op  4 allocs/op ...".
func parseBenchLine(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	vals := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		vals[f[i+1]] = v
	}
	return name, vals, len(vals) > 0
}

// value is one benchmark's metric, ok=false when it is not in the file.
func (g goBench) value(name, unit string) (float64, bool) {
	v, ok := g[name][unit]
	return v, ok
}
