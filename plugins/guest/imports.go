//go:build wasip1

package guest

import "unsafe"

//go:wasmimport http_handler log
func hLog(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport http_handler log_enabled
func hLogEnabled(level int32) uint32

//go:wasmimport http_handler get_config
func hGetConfig(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler enable_features
func hEnableFeatures(features uint32) uint32

//go:wasmimport http_handler get_method
func hGetMethod(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_method
func hSetMethod(ptr unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_uri
func hGetURI(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_uri
func hSetURI(ptr unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_protocol_version
func hGetProtocolVersion(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler add_header_value
func hAddHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler set_header_value
func hSetHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler remove_header
func hRemoveHeader(kind uint32, name unsafe.Pointer, nameLen uint32)

//go:wasmimport http_handler get_header_names
func hGetHeaderNames(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler get_header_values
func hGetHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler read_body
func hReadBody(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler write_body
func hWriteBody(kind uint32, ptr unsafe.Pointer, n uint32)

//go:wasmimport http_handler get_status_code
func hGetStatusCode() uint32

//go:wasmimport http_handler set_status_code
func hSetStatusCode(code uint32)

//go:wasmimport http_handler get_source_addr
func hGetSourceAddr(buf unsafe.Pointer, limit uint32) uint32
