#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/filetype/file_type.h"

namespace switchboard::filetype {

// A file with its embedded metadata removed.
struct StripResult {
  // The file to store: the input without the removed parts, or the input
  // unchanged when `kept_reason` is set.
  std::string bytes;
  // What was removed, in file order, e.g. {"APP1 Exif", "APP1 XMP"}; empty if
  // there was nothing to remove.
  std::vector<std::string> removed;
  // Set when the format is not rewritten, saying why (the file may still hold
  // metadata such as a location); empty when it was.
  std::string kept_reason;
};

// Removes metadata that can reveal where and with what a picture was taken
// (EXIF with its GPS tags, XMP), from a file already classified as `type`:
// - JPEG: APP1 segments (Exif, XMP), APP13 (Photoshop/IPTC, which holds
//   place names), and whatever follows the end-of-image marker (further
//   pictures indexed by an APP2 MPF segment, which goes too, or a motion
//   photo's video: each with metadata of its own). The orientation tag goes
//   with Exif, so a rotated photo displays as the sensor stored it.
// - PNG: eXIf, tEXt, zTXt and iTXt chunks (XMP is an iTXt chunk, and tools
//   keep raw EXIF in zTXt), and anything after IEND.
// - WebP: EXIF and "XMP " chunks, clearing their VP8X flags and fixing the
//   RIFF size; anything after the RIFF chunk.
// Everything else is copied byte for byte, so the image data is untouched.
// HEIC, MP4, QuickTime, GIF and PDF are returned unchanged with a
// `kept_reason`; plain text has nothing to remove.
//
// INVALID_ARGUMENT if the file's structure is broken (a segment or chunk that
// runs past the end, a missing IEND), naming where.
absl::StatusOr<StripResult> StripMetadata(FileType type, absl::string_view bytes);

}  // namespace switchboard::filetype
