#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace switchboard::fault {

// Named places in a protocol where crash tests kill the process, to prove
// that a crash at exactly that step loses nothing acknowledged and leaks
// nothing (tests/crash_test). A server started with
// --fault_point=routing.after_assign dies there by SIGKILL (as `kill -9`
// would: no destructor, no flush), the first time the point is reached, or
// the Nth time with --fault_point=routing.after_assign:N.
//
// Unarmed (production), a point costs one relaxed atomic load.
//
// Thread-safe: Arm once at start, before any thread reaches a point.

// Arms the point `spec` names ("name" or "name:N", N >= 1). Empty disarms.
// INVALID_ARGUMENT for a malformed spec.
absl::Status Arm(absl::string_view spec);

// Dies here if armed for `name` and this is the Nth arrival. Logs
// "fault_point_hit" to stderr first, so the test can tell where it died.
void Point(absl::string_view name);

}  // namespace switchboard::fault
