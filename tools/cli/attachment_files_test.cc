#include "tools/cli/attachment_files.h"

#include <cctype>
#include <filesystem>

#include "gtest/gtest.h"
#include "libs/storage/test_dir.h"

namespace switchboard::cli {
namespace {

TEST(GuessContentTypeTest, KnowsTheTypesTheServerAcceptsByExtension) {
  EXPECT_EQ(*GuessContentType("shot.png"), "image/png");
  EXPECT_EQ(*GuessContentType("/tmp/x/Receipt.JPG"), "image/jpeg");
  EXPECT_EQ(*GuessContentType("a.b.jpeg"), "image/jpeg");
  EXPECT_EQ(*GuessContentType("clip.mov"), "video/quicktime");
  EXPECT_EQ(*GuessContentType("statement.pdf"), "application/pdf");
  EXPECT_EQ(*GuessContentType("app.log"), "text/plain");
  for (const char* unknown : {"setup.exe", "README", "archive.tar.gz", "dir.png/notes"}) {
    absl::StatusOr<std::string> type = GuessContentType(unknown);
    ASSERT_EQ(type.status().code(), absl::StatusCode::kInvalidArgument) << unknown;
    EXPECT_NE(type.status().message().find("--type"), absl::string_view::npos);
  }
}

TEST(IdsTest, AreStableAndChangeWithEveryInput) {
  const std::string sha = std::string(64, 'a');
  const std::string id = UploadId("s-1", sha, "shot.png", "image/png");
  EXPECT_EQ(id, UploadId("s-1", sha, "shot.png", "image/png"));
  EXPECT_EQ(id.size(), 44u);
  EXPECT_EQ(id.rfind("cli-", 0), 0u);
  EXPECT_NE(id, UploadId("s-2", sha, "shot.png", "image/png"));
  EXPECT_NE(id, UploadId("s-1", std::string(64, 'b'), "shot.png", "image/png"));
  EXPECT_NE(id, UploadId("s-1", sha, "shot2.png", "image/png"));
  EXPECT_NE(id, UploadId("s-1", sha, "shot.png", "text/plain"));
  // The parts are delimited: moving text between them changes the id.
  EXPECT_NE(UploadId("s-1", sha, "ab", "c"), UploadId("s-1", sha, "a", "bc"));

  const std::string message = AttachmentMessageId("att-1", "my receipt");
  EXPECT_EQ(message, AttachmentMessageId("att-1", "my receipt"));
  EXPECT_NE(message, AttachmentMessageId("att-1", "my receipt!"));
  EXPECT_NE(message, AttachmentMessageId("att-2", "my receipt"));
  // client_message_id allows only letters, digits, '-' and '_'.
  for (char c : message) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-');
}

TEST(CheckLocalNameTest, RefusesNamesThatLeaveTheFolderOrHideCharacters) {
  EXPECT_TRUE(CheckLocalName("shot.png").ok());
  EXPECT_TRUE(CheckLocalName("收据 2026.pdf").ok());
  for (const char* bad :
       {"", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "a\nb", "a\x1b[2J"}) {
    EXPECT_EQ(CheckLocalName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(LocalFilesTest, ReadsWritesAndRefusesToOverwrite) {
  const std::string dir = storage::MakeTempDir();
  const std::string path = dir + "/out.bin";
  const std::string bytes("a\0b\xff", 4);
  EXPECT_TRUE(CheckNotThere(path, false).ok());
  ASSERT_TRUE(WriteLocalFile(path, bytes, false).ok());
  EXPECT_EQ(CheckNotThere(path, false).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(CheckNotThere(path, true).ok());
  EXPECT_EQ(*ReadLocalFile(path), bytes);

  absl::Status again = WriteLocalFile(path, "other", false);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_NE(again.message().find("--force"), absl::string_view::npos);
  EXPECT_EQ(*ReadLocalFile(path), bytes);
  ASSERT_TRUE(WriteLocalFile(path, "other", true).ok());
  EXPECT_EQ(*ReadLocalFile(path), "other");
  // No temporary file is left behind either way.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "out.bin");
  }
  EXPECT_EQ(files, 1);

  EXPECT_EQ(ReadLocalFile(dir + "/missing").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadLocalFile(dir).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(WriteLocalFile(dir + "/no/such/folder", "x", false).ok());
}

}  // namespace
}  // namespace switchboard::cli
