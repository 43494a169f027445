#include "libs/filetype/strip_metadata.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::filetype {
namespace {

uint32_t ReadBigEndian(absl::string_view bytes, size_t at, int width) {
  uint32_t value = 0;
  for (int i = 0; i < width; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

uint32_t ReadLittleEndian32(absl::string_view bytes, size_t at) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

void WriteLittleEndian32(std::string& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

absl::Status Broken(absl::string_view format, absl::string_view what, size_t offset) {
  return absl::InvalidArgumentError(
      absl::StrCat("broken ", format, " file: ", what, " at byte ", offset));
}

std::string App1Name(absl::string_view payload) {
  if (absl::StartsWith(payload, absl::string_view("Exif\0\0", 6))) return "APP1 Exif";
  if (absl::StartsWith(payload, "http://ns.adobe.com/xap/1.0/")) return "APP1 XMP";
  if (absl::StartsWith(payload, "http://ns.adobe.com/xmp/extension/")) {
    return "APP1 XMP extension";
  }
  return "APP1";
}

// The end of the entropy-coded data that starts at `at`: the next marker,
// which is 0xFF followed by anything but a stuffed 0x00 or a restart marker.
size_t EndOfScanData(absl::string_view in, size_t at) {
  while (at + 1 < in.size()) {
    if (static_cast<uint8_t>(in[at]) == 0xff) {
      const uint8_t next = static_cast<uint8_t>(in[at + 1]);
      if (next != 0x00 && !(next >= 0xd0 && next <= 0xd7)) return at;
    }
    ++at;
  }
  return in.size();
}

absl::StatusOr<StripResult> StripJpeg(absl::string_view in) {
  if (!absl::StartsWith(in, "\xff\xd8")) return Broken("JPEG", "no start-of-image marker", 0);
  StripResult result;
  result.bytes = std::string(in.substr(0, 2));
  size_t at = 2;
  bool scanned = false;
  while (true) {
    if (at >= in.size()) {
      // Cut off inside the image data: viewers show what there is.
      if (scanned) return result;
      return Broken("JPEG", "no image data before the end", at);
    }
    if (static_cast<uint8_t>(in[at]) != 0xff) return Broken("JPEG", "expected a marker", at);
    const size_t start = at;
    while (at < in.size() && static_cast<uint8_t>(in[at]) == 0xff) ++at;  // fill bytes
    if (at >= in.size()) return Broken("JPEG", "marker cut off", start);
    const uint8_t marker = static_cast<uint8_t>(in[at++]);
    // 0xFF00 is a stuffed byte of image data, never a marker: accepting it
    // here would read whatever follows as a segment.
    if (marker == 0x00) return Broken("JPEG", "0xFF00 where a marker belongs", start);
    if (marker == 0xd9) {  // EOI
      absl::StrAppend(&result.bytes, in.substr(start, at - start));
      break;
    }
    // Markers without a length: TEM and RSTn.
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      absl::StrAppend(&result.bytes, in.substr(start, at - start));
      continue;
    }
    if (at + 2 > in.size()) return Broken("JPEG", "segment length cut off", start);
    const size_t length = ReadBigEndian(in, at, 2);
    if (length < 2 || at + length > in.size()) {
      return Broken("JPEG", "segment runs past the end", start);
    }
    const absl::string_view payload = in.substr(at + 2, length - 2);
    at += length;
    if (marker == 0xe1) {
      result.removed.push_back(App1Name(payload));
    } else if (marker == 0xed) {
      result.removed.push_back("APP13 IPTC");
    } else if (marker == 0xe2 && absl::StartsWith(payload, absl::string_view("MPF\0", 4))) {
      // The index of the further pictures after EOI, which go too.
      result.removed.push_back("APP2 MPF");
    } else {
      absl::StrAppend(&result.bytes, in.substr(start, at - start));
    }
    if (marker == 0xda) {  // SOS: its image data follows
      scanned = true;
      const size_t end = EndOfScanData(in, at);
      absl::StrAppend(&result.bytes, in.substr(at, end - at));
      at = end;
    }
  }
  // Further pictures (MPF depth maps and previews, with Exif of their own)
  // or a motion photo's video, which carries a location too.
  if (at < in.size()) result.removed.push_back("data after EOI");
  return result;
}

absl::StatusOr<StripResult> StripPng(absl::string_view in) {
  constexpr absl::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  if (!absl::StartsWith(in, kSignature)) return Broken("PNG", "no PNG signature", 0);
  StripResult result;
  result.bytes = std::string(kSignature);
  size_t at = kSignature.size();
  while (true) {
    if (at + 12 > in.size()) return Broken("PNG", "no IEND chunk before the end", at);
    const size_t length = ReadBigEndian(in, at, 4);
    if (length > in.size() - at - 12) return Broken("PNG", "chunk runs past the end", at);
    const absl::string_view type = in.substr(at + 4, 4);
    const size_t next = at + 12 + length;
    if (type == "eXIf" || type == "tEXt" || type == "zTXt" || type == "iTXt") {
      result.removed.emplace_back(std::string(type));
    } else {
      absl::StrAppend(&result.bytes, in.substr(at, next - at));
    }
    at = next;
    if (type == "IEND") break;
  }
  if (at < in.size()) result.removed.push_back("data after IEND");
  return result;
}

absl::StatusOr<StripResult> StripWebp(absl::string_view in) {
  if (in.size() < 12 || !absl::StartsWith(in, "RIFF") || in.substr(8, 4) != "WEBP") {
    return Broken("WebP", "no RIFF WEBP header", 0);
  }
  const size_t riff_end = 8 + static_cast<size_t>(ReadLittleEndian32(in, 4));
  if (riff_end > in.size()) return Broken("WebP", "RIFF size runs past the end", 4);
  StripResult result;
  result.bytes = std::string(in.substr(0, 12));
  size_t vp8x_flags = 0;  // offset of VP8X's flags byte in the output, if any
  size_t at = 12;
  while (at < riff_end) {
    if (at + 8 > riff_end) return Broken("WebP", "chunk header cut off", at);
    const absl::string_view fourcc = in.substr(at, 4);
    const size_t size = ReadLittleEndian32(in, at + 4);
    const size_t padded = size + (size & 1);  // chunks are padded to even sizes
    if (padded > riff_end - at - 8) return Broken("WebP", "chunk runs past the end", at);
    if (fourcc == "EXIF" || fourcc == "XMP ") {
      result.removed.emplace_back(std::string(fourcc));
    } else {
      if (fourcc == "VP8X" && size > 0) vp8x_flags = result.bytes.size() + 8;
      absl::StrAppend(&result.bytes, in.substr(at, 8 + padded));
    }
    at += 8 + padded;
  }
  if (vp8x_flags != 0) {
    // VP8X flags byte: ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04, animation 0x02.
    result.bytes[vp8x_flags] = static_cast<char>(result.bytes[vp8x_flags] & ~0x0c);
  }
  WriteLittleEndian32(result.bytes, 4, static_cast<uint32_t>(result.bytes.size() - 8));
  if (riff_end < in.size()) result.removed.push_back("data after the RIFF chunk");
  return result;
}

StripResult Kept(absl::string_view in, std::string reason) {
  StripResult result;
  result.bytes = std::string(in);
  result.kept_reason = std::move(reason);
  return result;
}

}  // namespace

absl::StatusOr<StripResult> StripMetadata(FileType type, absl::string_view bytes) {
  switch (type) {
    case FileType::kJpeg:
      return StripJpeg(bytes);
    case FileType::kPng:
      return StripPng(bytes);
    case FileType::kWebp:
      return StripWebp(bytes);
    case FileType::kHeic:
    case FileType::kMp4:
    case FileType::kQuickTime:
      // ISO BMFF: Exif and XMP are items or boxes (meta/iinf/iloc in HEIC,
      // udta's ©xyz location in MP4/MOV) addressed by absolute file offsets
      // (iloc, stco/co64); removing bytes means rewriting those offsets.
      return Kept(bytes, absl::StrCat(MediaType(type),
                                      " is not rewritten: its metadata (Exif, XMP, location) "
                                      "sits in boxes that absolute offsets point past"));
    case FileType::kGif:
      return Kept(bytes, "image/gif is not rewritten: it has no Exif, and XMP or comment "
                         "extensions are left in place");
    case FileType::kPdf:
      return Kept(bytes, "application/pdf is not rewritten: its document information and XMP "
                         "metadata are left in place");
    case FileType::kText:
      return Kept(bytes, "");
  }
  return Kept(bytes, "unknown type");
}

}  // namespace switchboard::filetype
