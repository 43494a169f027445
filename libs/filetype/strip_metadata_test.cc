#include "libs/filetype/strip_metadata.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/filetype/file_type.h"
#include "libs/filetype/test_files.h"

namespace switchboard::filetype {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

uint32_t BigEndian(const std::string& bytes, size_t at, int width) {
  uint32_t value = 0;
  for (int i = 0; i < width; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

uint32_t LittleEndian32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

// The markers of a JPEG up to its first scan, checking every length; then
// "DA" if the file ends with EOI.
std::vector<std::string> JpegMarkers(const std::string& jpeg) {
  std::vector<std::string> markers;
  EXPECT_EQ(jpeg.substr(0, 2), "\xff\xd8");
  size_t at = 2;
  while (at + 4 <= jpeg.size()) {
    EXPECT_EQ(static_cast<uint8_t>(jpeg[at]), 0xff) << at;
    const uint8_t marker = static_cast<uint8_t>(jpeg[at + 1]);
    markers.push_back(absl::StrCat(absl::Hex(marker)));
    if (marker == 0xda) {
      EXPECT_EQ(jpeg.substr(jpeg.size() - 2), "\xff\xd9");
      return markers;
    }
    at += 2 + BigEndian(jpeg, at + 2, 2);
  }
  ADD_FAILURE() << "no scan";
  return markers;
}

// The chunk types of a PNG, checking every length and CRC and that IEND ends
// the file.
std::vector<std::string> PngChunks(const std::string& png) {
  std::vector<std::string> types;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const size_t length = BigEndian(png, at, 4);
    const std::string body = png.substr(at + 4, 4 + length);
    EXPECT_EQ(BigEndian(png, at + 8 + length, 4), testing::Crc32(body)) << body.substr(0, 4);
    types.push_back(body.substr(0, 4));
    at += 12 + length;
  }
  EXPECT_EQ(at, png.size());
  EXPECT_EQ(types.back(), "IEND");
  return types;
}

// The chunk FourCCs of a WebP, checking the RIFF size and each chunk's; for
// VP8X, also its flags as "VP8X/flags".
std::vector<std::string> WebpChunks(const std::string& webp) {
  std::vector<std::string> chunks;
  EXPECT_EQ(webp.substr(0, 4), "RIFF");
  EXPECT_EQ(LittleEndian32(webp, 4), webp.size() - 8);
  EXPECT_EQ(webp.substr(8, 4), "WEBP");
  size_t at = 12;
  while (at + 8 <= webp.size()) {
    const std::string fourcc = webp.substr(at, 4);
    const size_t size = LittleEndian32(webp, at + 4);
    chunks.push_back(fourcc == "VP8X" ? absl::StrCat(fourcc, "/", static_cast<int>(webp[at + 8]))
                                      : fourcc);
    at += 8 + size + (size & 1);
  }
  EXPECT_EQ(at, webp.size());
  return chunks;
}

class StripMetadataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto classifier = FileTypeClassifier::Create();
    ASSERT_TRUE(classifier.ok()) << classifier.status();
    classifier_ = *std::move(classifier);
  }

  // Checks that the location is gone and the result still classifies as
  // `type`.
  void ExpectNoLocation(const StripResult& result, FileType type) {
    EXPECT_THAT(result.bytes, Not(HasSubstr(testing::GpsLatitude())));
    EXPECT_THAT(result.bytes, Not(HasSubstr(testing::kXmpGps)));
    EXPECT_THAT(result.kept_reason, IsEmpty());
    auto classified = classifier_->Classify(result.bytes, MediaType(type));
    ASSERT_TRUE(classified.ok()) << classified.status();
    EXPECT_EQ(*classified, type);
  }

  std::unique_ptr<FileTypeClassifier> classifier_;
};

TEST_F(StripMetadataTest, SamplesCarryTheLocation) {
  for (const std::string& file :
       {testing::Jpeg(true), testing::Png(true), testing::Webp(true)}) {
    EXPECT_THAT(file, HasSubstr(testing::GpsLatitude()));
    EXPECT_THAT(file, HasSubstr(testing::kXmpGps));
  }
}

TEST_F(StripMetadataTest, JpegLosesExifAndXmpAndKeepsItsImage) {
  const std::string original = testing::Jpeg(true);
  EXPECT_THAT(JpegMarkers(original), ElementsAre("e0", "e1", "e1", "db", "c0", "c4", "c4", "da"));
  auto stripped = StripMetadata(FileType::kJpeg, original);
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_THAT(stripped->removed, ElementsAre("APP1 Exif", "APP1 XMP"));
  ExpectNoLocation(*stripped, FileType::kJpeg);
  EXPECT_THAT(JpegMarkers(stripped->bytes), ElementsAre("e0", "db", "c0", "c4", "c4", "da"));
  // Exactly the file without metadata, down to the byte.
  EXPECT_EQ(stripped->bytes, testing::Jpeg(false));
}

// A JPEG's second scan, with a stuffed 0xFF and a restart marker in the
// image data, and an MPF index whose second picture (with Exif) follows EOI,
// as phones write them.
TEST_F(StripMetadataTest, JpegLosesPicturesAfterItsEndAndKeepsEveryScan) {
  auto with_scans = [](std::string jpeg) {
    const std::string scans = absl::StrCat(
        "\x3f\xff\x00\x12\xff\xd3\x3f",
        absl::string_view("\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x3f\xff\xd9", 13));
    return jpeg.replace(jpeg.size() - 3, 3, scans);
  };
  std::string original = with_scans(testing::Jpeg(true));
  const std::string mpf = absl::StrCat("\xff\xe2", absl::string_view("\x00\x0aMPF\0MM\0*", 10));
  original.insert(original.find("\xff\xdb"), mpf);
  original += testing::Jpeg(true);
  auto stripped = StripMetadata(FileType::kJpeg, original);
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_THAT(stripped->removed,
              ElementsAre("APP1 Exif", "APP1 XMP", "APP2 MPF", "data after EOI"));
  ExpectNoLocation(*stripped, FileType::kJpeg);
  EXPECT_EQ(stripped->bytes, with_scans(testing::Jpeg(false)));
}

TEST_F(StripMetadataTest, JpegCutOffInsideItsImageDataIsKept) {
  const std::string jpeg = testing::Jpeg(false);
  const std::string cut = jpeg.substr(0, jpeg.size() - 2);
  auto stripped = StripMetadata(FileType::kJpeg, cut);
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_EQ(stripped->bytes, cut);
}

TEST_F(StripMetadataTest, PngLosesExifAndTextChunksAndKeepsItsImage) {
  const std::string original = testing::Png(true);
  EXPECT_THAT(PngChunks(original), ElementsAre("IHDR", "eXIf", "tEXt", "iTXt", "IDAT", "IEND"));
  auto stripped = StripMetadata(FileType::kPng, original + "trailing");
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_THAT(stripped->removed, ElementsAre("eXIf", "tEXt", "iTXt", "data after IEND"));
  ExpectNoLocation(*stripped, FileType::kPng);
  EXPECT_THAT(PngChunks(stripped->bytes), ElementsAre("IHDR", "IDAT", "IEND"));
  EXPECT_EQ(stripped->bytes, testing::Png(false));
}

TEST_F(StripMetadataTest, WebpLosesExifAndXmpChunksAndTheirFlags) {
  const std::string original = testing::Webp(true);
  EXPECT_THAT(WebpChunks(original), ElementsAre("VP8X/12", "VP8L", "EXIF", "XMP "));
  auto stripped = StripMetadata(FileType::kWebp, original);
  ASSERT_TRUE(stripped.ok()) << stripped.status();
  EXPECT_THAT(stripped->removed, ElementsAre("EXIF", "XMP "));
  ExpectNoLocation(*stripped, FileType::kWebp);
  EXPECT_THAT(WebpChunks(stripped->bytes), ElementsAre("VP8X/0", "VP8L"));
}

TEST_F(StripMetadataTest, FilesWithoutMetadataComeBackUnchanged) {
  for (const auto& [type, file] : std::vector<std::pair<FileType, std::string>>{
           {FileType::kJpeg, testing::Jpeg()},
           {FileType::kPng, testing::Png()},
           {FileType::kWebp, testing::Webp()},
           {FileType::kText, testing::Text()}}) {
    auto stripped = StripMetadata(type, file);
    ASSERT_TRUE(stripped.ok()) << MediaType(type) << ": " << stripped.status();
    EXPECT_EQ(stripped->bytes, file) << MediaType(type);
    EXPECT_THAT(stripped->removed, IsEmpty());
    EXPECT_THAT(stripped->kept_reason, IsEmpty());
  }
}

TEST_F(StripMetadataTest, ContainersItDoesNotRewriteAreKeptWithAReason) {
  for (const auto& [type, file] : std::vector<std::pair<FileType, std::string>>{
           {FileType::kHeic, testing::Heic()},
           {FileType::kMp4, testing::Mp4()},
           {FileType::kQuickTime, testing::QuickTime()},
           {FileType::kGif, testing::Gif()},
           {FileType::kPdf, testing::Pdf()}}) {
    auto stripped = StripMetadata(type, file);
    ASSERT_TRUE(stripped.ok()) << MediaType(type) << ": " << stripped.status();
    EXPECT_EQ(stripped->bytes, file);
    EXPECT_THAT(stripped->removed, IsEmpty());
    EXPECT_THAT(stripped->kept_reason,
                AllOf(HasSubstr(MediaType(type)), HasSubstr("not rewritten")));
  }
}

TEST_F(StripMetadataTest, RefusesBrokenStructure) {
  const struct {
    FileType type;
    std::string bytes;
    std::string message;
  } kCases[] = {
      {FileType::kJpeg, testing::Jpeg(true).substr(0, 30), "segment runs past the end"},
      {FileType::kJpeg, "\xff\xd8\xff\xe0", "segment length cut off"},
      {FileType::kJpeg, "\xff\xd8", "no image data"},
      {FileType::kJpeg, "\xff\xd8X", "expected a marker at byte 2"},
      {FileType::kPng, testing::Png(true).substr(0, 60), "chunk runs past the end"},
      {FileType::kPng, testing::Png().substr(0, testing::Png().size() - 12), "no IEND"},
      {FileType::kWebp, testing::Webp(true).substr(0, 40), "RIFF size runs past the end"},
  };
  for (const auto& c : kCases) {
    auto stripped = StripMetadata(c.type, c.bytes);
    EXPECT_EQ(stripped.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(stripped.status().ToString(), HasSubstr(c.message));
  }
}

// Found by strip_metadata_fuzz: read as a segment, the bytes after 0xFF00
// hid an APP1 that a second pass, seeing image data, then found.
TEST_F(StripMetadataTest, JpegWithAStuffedByteWhereAMarkerBelongsIsRefused) {
  const std::string jpeg = absl::StrCat(
      "\xff\xd8", absl::string_view("\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x3f", 11),
      absl::string_view("\xff\xe1\x00\x08" "Exif\0\0", 10),
      absl::string_view("\xff\x00\x00\x0c\xff\xe1\x00\x08" "Exif\0\0\xff\xd9", 16));
  auto stripped = StripMetadata(FileType::kJpeg, jpeg);
  EXPECT_EQ(stripped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stripped.status().ToString(), HasSubstr("0xFF00 where a marker belongs at byte 23"));
}

TEST_F(StripMetadataTest, WebpChunkLargerThanItsRiffIsRefused) {
  std::string webp = testing::Webp(true);
  webp[18] = '\x7f';  // VP8X's size, now far beyond the RIFF's
  auto stripped = StripMetadata(FileType::kWebp, webp);
  EXPECT_EQ(stripped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stripped.status().ToString(), HasSubstr("chunk runs past the end at byte 12"));
}

}  // namespace
}  // namespace switchboard::filetype
