#include "libs/filetype/file_type.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/filetype/test_files.h"

namespace switchboard::filetype {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class FileTypeClassifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto classifier = FileTypeClassifier::Create();
    ASSERT_TRUE(classifier.ok()) << classifier.status();
    classifier_ = *std::move(classifier);
  }

  std::unique_ptr<FileTypeClassifier> classifier_;
};

TEST_F(FileTypeClassifierTest, RecognizesEveryAllowedTypeAsDeclared) {
  const struct {
    std::string bytes;
    std::string declared;
    FileType type;
  } kCases[] = {
      {testing::Png(), "image/png", FileType::kPng},
      {testing::Png(true), "image/png", FileType::kPng},
      {testing::Jpeg(), "image/jpeg", FileType::kJpeg},
      {testing::Jpeg(true), "image/jpeg", FileType::kJpeg},
      {testing::Gif(), "image/gif", FileType::kGif},
      {testing::Webp(), "image/webp", FileType::kWebp},
      {testing::Webp(true), "image/webp", FileType::kWebp},
      {testing::Heic(), "image/heic", FileType::kHeic},
      {testing::Mp4(), "video/mp4", FileType::kMp4},
      {testing::QuickTime(), "video/quicktime", FileType::kQuickTime},
      {testing::Pdf(), "application/pdf", FileType::kPdf},
      {testing::Text(), "text/plain", FileType::kText},
  };
  for (const auto& c : kCases) {
    auto type = classifier_->Classify(c.bytes, c.declared);
    ASSERT_TRUE(type.ok()) << c.declared << ": " << type.status();
    EXPECT_EQ(*type, c.type) << c.declared;
    EXPECT_EQ(MediaType(*type), c.declared);
  }
}

TEST_F(FileTypeClassifierTest, DeclaredTypeIgnoresCaseParametersAndAliases) {
  EXPECT_EQ(*classifier_->Classify(testing::Text(), "Text/Plain; charset=utf-8"),
            FileType::kText);
  EXPECT_EQ(*classifier_->Classify(testing::Jpeg(), "image/jpg"), FileType::kJpeg);
  EXPECT_EQ(*classifier_->Classify(testing::Heic(), "image/heif"), FileType::kHeic);
}

TEST_F(FileTypeClassifierTest, Utf8TextWithWindowsLineEndsIsPlainText) {
  EXPECT_EQ(*classifier_->Classify("Заказ 4411 списан дважды 🙁\r\nСпасибо\r\n", "text/plain"),
            FileType::kText);
}

TEST_F(FileTypeClassifierTest, UndeclaredTypeTakesWhatTheBytesAre) {
  EXPECT_EQ(*classifier_->Classify(testing::Png(), ""), FileType::kPng);
  EXPECT_EQ(*classifier_->Classify(testing::Mp4(), "application/octet-stream"), FileType::kMp4);
}

TEST_F(FileTypeClassifierTest, MismatchNamesDeclaredAndSniffedTypes) {
  auto type = classifier_->Classify(testing::Jpeg(), "image/png");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(),
              AllOf(HasSubstr("\"image/png\""), HasSubstr("image/jpeg (JPEG image data")));

  type = classifier_->Classify(testing::QuickTime(), "video/mp4");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(),
              AllOf(HasSubstr("\"video/mp4\""), HasSubstr("video/quicktime")));

  type = classifier_->Classify(testing::Pdf(), "image/bmp");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(),
              AllOf(HasSubstr("\"image/bmp\""), HasSubstr("application/pdf")));
}

TEST_F(FileTypeClassifierTest, DeclaredTypeIsEscapedAndCutShortInMessages) {
  auto type = classifier_->Classify(testing::Pdf(), "image/png\n" + std::string(500, 'x'));
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(), HasSubstr("\"image/png\\n"));
  EXPECT_LT(type.status().message().size(), 300u);
}

TEST_F(FileTypeClassifierTest, ExecutableDeclaredAsImageIsRefusedAsAnExecutable) {
  auto type = classifier_->Classify(testing::Elf(), "image/png");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(),
              AllOf(HasSubstr("application/x-executable"), HasSubstr("ELF 64-bit LSB executable"),
                    HasSubstr("not an allowed type"), HasSubstr("\"image/png\"")));
}

TEST_F(FileTypeClassifierTest, RefusesTypesOffTheList) {
  // HTML served back to an agent's browser could run script.
  auto type = classifier_->Classify(testing::Html(), "text/plain");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(), HasSubstr("text/html"));

  type = classifier_->Classify(std::string("\x00\x01\x02\x03\xfe\xff\x10\x80", 8), "");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(), HasSubstr("application/octet-stream"));
}

TEST_F(FileTypeClassifierTest, RefusesAnEmptyFile) {
  auto type = classifier_->Classify("", "text/plain");
  EXPECT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(type.status().ToString(), HasSubstr("empty"));
}

TEST_F(FileTypeClassifierTest, IsSafeToShareBetweenThreads) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const bool png = (i + t) % 2 == 0;
        auto type = classifier_->Classify(png ? testing::Png() : testing::Pdf(), "");
        ASSERT_TRUE(type.ok()) << type.status();
        EXPECT_EQ(*type, png ? FileType::kPng : FileType::kPdf);
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace
}  // namespace switchboard::filetype
