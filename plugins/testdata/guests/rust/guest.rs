// A Gatehouse test plugin in Rust (Debian's rustc, wasm32-wasi, a command:
// main runs in _start). It copies the request's X-In header to the
// response's X-Out header, and sets X-Lang: rust and X-Rust-Config.
use std::sync::Mutex;

#[link(wasm_import_module = "http_handler")]
extern "C" {
    fn get_config(buf: *mut u8, limit: u32) -> u32;
    fn get_header_values(kind: u32, name: *const u8, name_len: u32, buf: *mut u8, limit: u32) -> u64;
    fn set_header_value(kind: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32);
}

static CONFIG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static IN_VALUE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn set(kind: u32, name: &str, value: &[u8]) {
    unsafe { set_header_value(kind, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) }
}

#[no_mangle]
pub extern "C" fn handle_request() -> i64 {
    let name = "X-In";
    let cl = unsafe { get_header_values(0, name.as_ptr(), 4, std::ptr::null_mut(), 0) };
    let len = cl as u32;
    let mut buf = vec![0u8; len as usize];
    unsafe { get_header_values(0, name.as_ptr(), 4, buf.as_mut_ptr(), len) };
    if cl >> 32 > 0 {
        buf.truncate(buf.iter().position(|&b| b == 0).unwrap_or(buf.len()));
    }
    *IN_VALUE.lock().unwrap() = buf;
    set(0, "X-Lang-Req", b"rust");
    (9i64 << 32) | 1
}

#[no_mangle]
pub extern "C" fn handle_response(req_ctx: i32, _is_error: i32) {
    assert_eq!(req_ctx, 9);
    set(1, "X-Lang", b"rust");
    set(1, "X-Out", &IN_VALUE.lock().unwrap());
    set(1, "X-Rust-Config", &CONFIG.lock().unwrap());
}

fn main() {
    // Command start: read the config once; returning from main keeps the instance.
    let len = unsafe { get_config(std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; len as usize];
    unsafe { get_config(buf.as_mut_ptr(), len) };
    *CONFIG.lock().unwrap() = buf;
}
