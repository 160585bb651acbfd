// Command gatehouse-bench measures the gateway against a bare
// httputil.ReverseProxy on the same machine, in one run, and prints a
// markdown report: throughput, CPU per request, open-loop latency, memory
// with 1,000,000 keys, start-up time, and the project's targets.
//
// Its hidden subcommands "upstream" and "baseline-proxy" are the other
// processes of the benchmark: they run as children of the main command so
// that each process is pinned and its CPU time read the same way.
package main

import (
	"fmt"
	"os"
)

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "upstream":
		err = runUpstream(args[1:])
	case len(args) > 0 && args[0] == "baseline-proxy":
		err = runBaselineProxy(args[1:])
	default:
		err = runBench(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench:", err)
		if err == errUsage {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
