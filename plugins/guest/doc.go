// Package guest is a tiny library for writing Gatehouse plugins in standard
// Go: it binds http-wasm's "http_handler" host functions and exports
// handle_request and handle_response. Build a plugin with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// and register the handlers from an init function (a c-shared module runs
// package init functions in _initialize, never main):
//
//	func init() {
//		guest.HandleRequest(func(req guest.Request, resp guest.Response) (bool, uint32) {
//			req.Header().Set("X-Hello", "world")
//			return true, 0
//		})
//	}
//	func main() {}
package guest
