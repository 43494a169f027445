#include "libs/filetype/test_files.h"

#include <cstdint>
#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace switchboard::filetype::testing {
namespace {

std::string BigEndian(uint32_t value, int width) {
  std::string out;
  for (int i = width - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

std::string LittleEndian32(uint32_t value) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}

std::string Bytes(std::initializer_list<uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

std::string JpegSegment(uint8_t marker, absl::string_view payload) {
  return absl::StrCat(Bytes({0xff, marker}), BigEndian(payload.size() + 2, 2), payload);
}

std::string RiffChunk(absl::string_view fourcc, absl::string_view payload) {
  std::string chunk = absl::StrCat(fourcc, LittleEndian32(payload.size()), payload);
  if (payload.size() % 2 == 1) chunk.push_back('\0');
  return chunk;
}

std::string Riff(absl::string_view body) {
  return absl::StrCat("RIFF", LittleEndian32(4 + body.size()), "WEBP", body);
}

// A 1x1 VP8L (lossless) bitstream.
std::string Vp8l() {
  return Bytes({0x2f, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07});
}

}  // namespace

uint32_t Crc32(absl::string_view bytes) {
  uint32_t crc = 0xffffffff;
  for (char c : bytes) {
    crc ^= static_cast<uint8_t>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
  }
  return ~crc;
}

std::string PngChunk(absl::string_view type, absl::string_view data) {
  const std::string body = absl::StrCat(type, data);
  return absl::StrCat(BigEndian(data.size(), 4), body, BigEndian(Crc32(body), 4));
}

std::string GpsLatitude() {
  return absl::StrCat(BigEndian(52, 4), BigEndian(1, 4), BigEndian(31, 4), BigEndian(1, 4),
                      BigEndian(1234, 4), BigEndian(100, 4));
}

std::string ExifWithGps() {
  // Header, IFD0 at 8 with one entry (GPSInfo -> 26), the GPS IFD at 26 with
  // GPSLatitudeRef "N" and GPSLatitude (3 RATIONALs at 56).
  return absl::StrCat("MM", BigEndian(42, 2), BigEndian(8, 4),
                      BigEndian(1, 2), BigEndian(0x8825, 2), BigEndian(4, 2), BigEndian(1, 4),
                      BigEndian(26, 4), BigEndian(0, 4),
                      BigEndian(2, 2), BigEndian(1, 2), BigEndian(2, 2), BigEndian(2, 4),
                      absl::string_view("N\0\0\0", 4), BigEndian(2, 2), BigEndian(5, 2),
                      BigEndian(3, 4), BigEndian(56, 4), BigEndian(0, 4), GpsLatitude());
}

std::string XmpWithGps() {
  return absl::StrCat(
      "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
      "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
      "xmlns:exif=\"http://ns.adobe.com/exif/1.0/\" exif:GPSLatitude=\"",
      kXmpGps, "\"/></rdf:RDF></x:xmpmeta>");
}

std::string Jpeg(bool metadata) {
  const std::string jfif = Bytes({'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0});
  std::string quantization = Bytes({0x00});
  quantization.append(64, '\x01');
  // One code of length 1 per table: DC category 0, AC end-of-block.
  std::string dc_table = Bytes({0x00, 1});
  dc_table.append(15, '\0');
  dc_table.push_back('\0');
  std::string ac_table = dc_table;
  ac_table[0] = 0x10;
  return absl::StrCat(
      Bytes({0xff, 0xd8}), JpegSegment(0xe0, jfif),
      metadata ? absl::StrCat(JpegSegment(0xe1, absl::StrCat(absl::string_view("Exif\0\0", 6),
                                                             ExifWithGps())),
                              JpegSegment(0xe1, absl::StrCat(absl::string_view(
                                                                 "http://ns.adobe.com/xap/1.0/\0",
                                                                 29),
                                                             XmpWithGps())))
               : "",
      JpegSegment(0xdb, quantization),
      JpegSegment(0xc0, Bytes({8, 0, 1, 0, 1, 1, 1, 0x11, 0})), JpegSegment(0xc4, dc_table),
      JpegSegment(0xc4, ac_table), JpegSegment(0xda, Bytes({1, 1, 0x00, 0, 0x3f, 0})),
      // DC "0" and end-of-block "0", padded with ones; then EOI.
      Bytes({0x3f, 0xff, 0xd9}));
}

std::string Png(bool metadata) {
  const std::string header = absl::StrCat(BigEndian(1, 4), BigEndian(1, 4), Bytes({8, 0, 0, 0, 0}));
  // zlib, one stored block holding the scanline: filter 0, pixel 0.
  const std::string image = Bytes({0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00,
                                   0x02, 0x00, 0x01});
  return absl::StrCat(
      "\x89PNG\r\n\x1a\n", PngChunk("IHDR", header),
      metadata ? absl::StrCat(PngChunk("eXIf", ExifWithGps()),
                              PngChunk("tEXt", absl::string_view("Comment\0taken at home", 21)),
                              PngChunk("iTXt", absl::StrCat(absl::string_view(
                                                                "XML:com.adobe.xmp\0\0\0\0\0", 22),
                                                            XmpWithGps())))
               : "",
      PngChunk("IDAT", image), PngChunk("IEND", ""));
}

std::string Webp(bool metadata) {
  if (!metadata) return Riff(RiffChunk("VP8L", Vp8l()));
  // VP8X: flags EXIF (0x08) and XMP (0x04), reserved, canvas 1x1 (minus one).
  const std::string vp8x = Bytes({0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  return Riff(absl::StrCat(RiffChunk("VP8X", vp8x), RiffChunk("VP8L", Vp8l()),
                           RiffChunk("EXIF", ExifWithGps()), RiffChunk("XMP ", XmpWithGps())));
}

std::string Gif() {
  return absl::StrCat("GIF89a", Bytes({1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x2c, 0,
                                       0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0}),
                      ";");
}

namespace {
std::string FileTypeBox(absl::string_view major, absl::string_view compatible) {
  const std::string body = absl::StrCat(major, BigEndian(0, 4), compatible);
  return absl::StrCat(BigEndian(8 + body.size(), 4), "ftyp", body, BigEndian(8, 4), "free");
}
}  // namespace

std::string Heic() { return FileTypeBox("heic", "mif1heic"); }
std::string Mp4() { return FileTypeBox("isom", "isommp41"); }
std::string QuickTime() { return FileTypeBox("qt  ", "qt  "); }

std::string Pdf() {
  return "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
}

std::string Text() { return "Order 4411 was charged twice, see the log below.\nThanks\n"; }

std::string Elf() {
  std::string header = Bytes({0x7f, 'E', 'L', 'F', 2, 1, 1, 0});
  header.append(8, '\0');
  // e_type EXEC, e_machine x86-64, e_version 1, then zeros (no headers).
  header += Bytes({2, 0, 0x3e, 0, 1, 0, 0, 0});
  header.resize(64, '\0');
  return header;
}

std::string Html() { return "<html><body><script>alert(1)</script></body></html>\n"; }

}  // namespace switchboard::filetype::testing
