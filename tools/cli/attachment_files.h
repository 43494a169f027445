#pragma once

// The local side of `customer attach` and `agent attachment get`: the type
// of a file, the idempotency keys that make re-running a command a retry,
// and reading and writing the files themselves.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace switchboard::cli {

// The type UploadAttachment expects for `path`, from its extension in any
// case: png jpg jpeg gif webp heic mp4 mov pdf txt log. InvalidArgument
// asking for --type otherwise (the server sniffs the real type and refuses
// a wrong one, so a guess would only move the error there).
absl::StatusOr<std::string> GuessContentType(absl::string_view path);

// The last component of `path`: the name a file is uploaded under.
std::string BaseName(absl::string_view path);

// The upload_id of a file (its SHA-256 in hex, name and type) uploaded to
// `session`: always the same for the same inputs, so running the command
// again after a failure retries the upload, which the server answers with
// the first attachment (`replayed`) instead of storing it twice. The name
// and type count because the server refuses an upload_id reused for a
// different header (ALREADY_EXISTS). 44 characters, "cli-" and hex.
std::string UploadId(absl::string_view session, absl::string_view sha256,
                     absl::string_view file_name, absl::string_view content_type);

// The client_message_id of the message carrying `attachment_id` with
// `text`: a retry sends the same id, so the server answers it with the
// first message instead of a duplicate. Same form as UploadId.
std::string AttachmentMessageId(absl::string_view attachment_id, absl::string_view text);

// OK when `name`, a file name chosen by whoever uploaded it, may be created
// in the current folder as it is: not empty, not "." or "..", no '/', '\\'
// or control characters. InvalidArgument otherwise.
absl::Status CheckLocalName(absl::string_view name);

// The whole file at `path`; InvalidArgument naming it when it cannot be read
// (missing, a folder, unreadable).
absl::StatusOr<std::string> ReadLocalFile(const std::string& path);

// AlreadyExists, as WriteLocalFile says it, when `path` exists and not
// `overwrite`; else OK. Fails a download before its bytes are fetched.
absl::Status CheckNotThere(const std::string& path, bool overwrite);

// Writes `bytes` to `path` through a temporary file beside it, so that
// `path` never holds part of the bytes. Without `overwrite`, AlreadyExists
// when `path` exists (checked atomically as the file appears). Internal
// for other write errors.
absl::Status WriteLocalFile(const std::string& path, absl::string_view bytes, bool overwrite);

}  // namespace switchboard::cli
