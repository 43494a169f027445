// Default options of the sanitizer runtimes, for every binary built with
// --config=asan or --config=tsan (see BUILD). ASAN_OPTIONS and the like
// still override them.

extern "C" {

// Leaks fail (LeakSanitizer runs at exit); so do initialization-order bugs
// and uses of a stack frame after its function returned.
const char* __asan_default_options() {
  return "detect_leaks=1:check_initialization_order=1:strict_init_order=1:"
         "detect_stack_use_after_return=1";
}

// Undefined behaviour already aborts (-fno-sanitize-recover=all); show where
// it came from.
const char* __ubsan_default_options() { return "print_stacktrace=1"; }

// The first report fails the program; a deadlock report shows both stacks.
const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1";
}

}  // extern "C"
