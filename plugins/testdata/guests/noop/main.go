//go:build wasip1

// Command noop passes every request on untouched: the benchmark's plugin.
package main

import _ "gatehouse/plugins/guest" // exports handle_request and handle_response

func main() {}
