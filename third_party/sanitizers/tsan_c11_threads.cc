// ThreadSanitizer (LLVM 14) intercepts POSIX threads but not the C11 thread
// functions of <threads.h>, and glibc implements those without going through
// the intercepted pthread symbols. Debian's librdkafka uses C11 threads: a
// thread it starts with thrd_create is unknown to TSan, and crashes in TSan's
// allocator on its first malloc; its mtx_*/cnd_* locking is invisible. In
// --config=tsan binaries these definitions take the place of glibc's (the
// executable's symbols come first) and do the same through the intercepted
// pthread functions, which glibc's C11 types wrap one to one. Without
// ThreadSanitizer this file is empty.

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <threads.h>

namespace {

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "glibc's mtx_t wraps pthread_mutex_t");
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "glibc's cnd_t wraps pthread_cond_t");
static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "glibc's once_flag is a pthread_once_t");

int Result(int error) {
  switch (error) {
    case 0:
      return thrd_success;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    case ENOMEM:
    case EAGAIN:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

struct Start {
  thrd_start_t function;
  void* argument;
};

// A C11 thread's int result travels as the pthread's void* (as in glibc).
void* RunC11Thread(void* start) {
  const Start s = *static_cast<Start*>(start);
  delete static_cast<Start*>(start);
  return reinterpret_cast<void*>(static_cast<intptr_t>(s.function(s.argument)));
}

pthread_mutex_t* Native(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* Native(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t function, void* argument) {
  auto* start = new Start{function, argument};
  const int error = pthread_create(thread, nullptr, RunC11Thread, start);
  if (error != 0) delete start;
  return Result(error);
}

int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int error = pthread_join(thread, &value);
  if (error == 0 && result != nullptr) {
    *result = static_cast<int>(reinterpret_cast<intptr_t>(value));
  }
  return Result(error);
}

int thrd_detach(thrd_t thread) { return Result(pthread_detach(thread)); }

int mtx_init(mtx_t* mutex, int type) {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  if ((type & mtx_recursive) != 0) {
    pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE);
  }
  const int error = pthread_mutex_init(Native(mutex), &attributes);
  pthread_mutexattr_destroy(&attributes);
  return Result(error);
}

int mtx_lock(mtx_t* mutex) { return Result(pthread_mutex_lock(Native(mutex))); }

int mtx_trylock(mtx_t* mutex) { return Result(pthread_mutex_trylock(Native(mutex))); }

int mtx_timedlock(mtx_t* mutex, const struct timespec* deadline) {
  return Result(pthread_mutex_timedlock(Native(mutex), deadline));
}

int mtx_unlock(mtx_t* mutex) { return Result(pthread_mutex_unlock(Native(mutex))); }

void mtx_destroy(mtx_t* mutex) { pthread_mutex_destroy(Native(mutex)); }

int cnd_init(cnd_t* condition) { return Result(pthread_cond_init(Native(condition), nullptr)); }

int cnd_signal(cnd_t* condition) { return Result(pthread_cond_signal(Native(condition))); }

int cnd_broadcast(cnd_t* condition) { return Result(pthread_cond_broadcast(Native(condition))); }

int cnd_wait(cnd_t* condition, mtx_t* mutex) {
  return Result(pthread_cond_wait(Native(condition), Native(mutex)));
}

int cnd_timedwait(cnd_t* condition, mtx_t* mutex, const struct timespec* deadline) {
  return Result(pthread_cond_timedwait(Native(condition), Native(mutex), deadline));
}

void cnd_destroy(cnd_t* condition) { pthread_cond_destroy(Native(condition)); }

void call_once(once_flag* flag, void (*function)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), function);
}

}  // extern "C"

#endif  // __has_feature(thread_sanitizer)
#endif  // defined(__has_feature)
