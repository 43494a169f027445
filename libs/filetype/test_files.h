#pragma once

// Small sample files built in memory for tests: the least that is still a
// well-formed file of each kind (a 1x1 image, a box header), plus metadata
// carrying a known GPS position.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace switchboard::filetype::testing {

// A big-endian TIFF (the body of an Exif block) with a GPS IFD holding
// latitude N 52° 31' 12.34", whose rational values are `GpsLatitude()`.
std::string ExifWithGps();
// The 24 bytes of the latitude's three rationals: present iff the GPS
// position is.
std::string GpsLatitude();
// An XMP packet with exif:GPSLatitude; contains `kXmpGps`.
std::string XmpWithGps();
inline constexpr char kXmpGps[] = "52,31.2057N";

// A 1x1 grey baseline JPEG; with an APP1 Exif segment (ExifWithGps()) and an
// APP1 XMP segment (XmpWithGps()) after JFIF's APP0 when `metadata`.
std::string Jpeg(bool metadata = false);
// A 1x1 grey PNG; with eXIf, tEXt and iTXt XMP chunks before IDAT when
// `metadata`.
std::string Png(bool metadata = false);
// A 1x1 lossless WebP: the simple format without metadata, or the extended
// format (VP8X with EXIF and XMP flags, EXIF and "XMP " chunks) with it.
std::string Webp(bool metadata = false);
std::string Gif();
std::string Heic();
std::string Mp4();
std::string QuickTime();
std::string Pdf();
std::string Text();
// The 64-byte header of an x86-64 ELF executable.
std::string Elf();
std::string Html();

// A PNG chunk with its length and CRC.
std::string PngChunk(absl::string_view type, absl::string_view data);
uint32_t Crc32(absl::string_view bytes);

}  // namespace switchboard::filetype::testing
