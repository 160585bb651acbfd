// A valid module that exports neither handle_request nor handle_response:
// uploads must refuse it.
__attribute__((export_name("something_else"))) int something_else(void) { return 42; }
