// Issue 16's attachments against the sessions binary as operators run it: a
// process with a real ClamAV daemon (libs/testing/clamd, which detects the
// EICAR test file), keeping files in its data folder or in a real
// S3-compatible server (gofakes3), no bot and no routing (this test assigns
// the agent with routing's service token). Every test runs on both stores.
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/blob/blob_store.h"
#include "libs/blob/s3_blob_store.h"
#include "libs/filetype/file_type.h"
#include "libs/filetype/test_files.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/clamd/clamd.h"
#include "libs/testing/fake_s3/fake_s3.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

namespace sv1 = sessions::v1;
namespace files = filetype::testing;
using auth::Role;
using grpc::StatusCode;
using testing::FakeS3Server;

constexpr char kBinary[] = "services/sessions/sessions_server";
constexpr char kCustomer[] = "cust-a";
constexpr char kOtherCustomer[] = "cust-b";
constexpr char kAgent[] = "agent-a";

enum class Store { kFiles, kS3 };

std::string StoreName(const ::testing::TestParamInfo<Store>& info) {
  return info.param == Store::kFiles ? "Files" : "S3";
}

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// What a download gave: the status, the attachment, and the bytes or the
// signed URL.
struct Downloaded {
  grpc::Status status;
  sv1::Attachment attachment;
  std::string bytes;
  std::optional<sv1::SignedUrl> signed_url;
};

class AttachmentsProcessTest : public ::testing::TestWithParam<Store> {
 protected:
  AttachmentsProcessTest()
      : dir_(storage::MakeTempDir()),
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "sessions")) {}

  void SetUp() override {
    if (GetParam() == Store::kS3) {
      s3_ = std::make_unique<FakeS3Server>();
      std::ofstream(dir_ + "/s3_secret") << FakeS3Server::kSecretAccessKey << "\n";
    }
    Start("first.log");
  }

  std::vector<std::string> Flags() const {
    std::vector<std::string> flags = {
        "--data_dir=" + data_dir(), "--keys_dir=" + dir_ + "/keys", "--port=0",
        "--metrics_port=0", "--bind_address=127.0.0.1", "--drain_deadline=2s",
        "--bot_address=", "--routing_address=", "--sweep_interval=1h",
        "--routing_retry_interval=1h", "--clamd_address=" + clamd_.unix_address(),
        "--scan_interval=100ms"};
    if (s3_ != nullptr) {
      flags.insert(flags.end(), {"--blob_store=" + s3_->endpoint(),
                                 std::string("--s3_bucket=") + FakeS3Server::kBucket,
                                 std::string("--s3_access_key_id=") + FakeS3Server::kAccessKeyId,
                                 "--s3_secret_access_key_file=" + dir_ + "/s3_secret"});
    }
    return flags;
  }

  std::string data_dir() const { return dir_ + "/data"; }

  void Start(const std::string& log_name) {
    server_ = std::make_unique<testing::ServerProcess>(kBinary, Flags(), dir_ + "/" + log_name);
    ASSERT_GT(server_->grpc_port(), 0) << server_->log();
    stub_ = sv1::SessionsService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // SIGTERM, then a new process on the same data folder (and bucket).
  void Restart() {
    ASSERT_EQ(server_->Terminate(absl::Seconds(10)), 0) << server_->log();
    Start("second.log");
  }

  std::string Customer(const std::string& id = kCustomer) const {
    return tokens_.For(Role::kCustomer, id);
  }
  std::string Agent() const { return tokens_.For(Role::kAgent, kAgent); }
  std::string Supervisor() const { return tokens_.For(Role::kSupervisor, "sup-1"); }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token,
                                                      absl::Duration deadline = absl::Seconds(10)) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return context;
  }

  // A QUEUED EMAIL session of `customer` (no bot, no routing: it stays
  // there until AssignAgent).
  std::string QueuedSession(const std::string& customer = kCustomer) {
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_EMAIL);
    request.set_category(common::v1::CATEGORY_DEPOSIT);
    request.set_language("en");
    request.set_subject("deposit");
    request.mutable_first_message()->set_text("My deposit has not arrived.");
    sv1::CreateSessionResponse response;
    grpc::Status status = stub_->CreateSession(Context(Customer(customer)).get(), request,
                                               &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.session().state(), sv1::SESSION_STATE_QUEUED);
    return response.session().session_id();
  }

  // Routing's call when agent A accepts the offer.
  void AssignAgent(const std::string& session_id) {
    sv1::AssignAgentRequest request;
    request.set_session_id(session_id);
    request.set_agent_id(kAgent);
    request.set_offer_id("offer-" + session_id);
    sv1::AssignAgentResponse response;
    grpc::Status status = stub_->AssignAgent(
        Context(tokens_.ServiceToken("routing", "sessions")).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.session().state(), sv1::SESSION_STATE_ASSIGNED);
  }

  // Uploads `bytes` in `chunks` pieces; the header declares their true
  // size and SHA-256, and `content_type` as given.
  grpc::Status Upload(const std::string& token, const std::string& session_id,
                      const std::string& upload_id, const std::string& file_name,
                      const std::string& content_type, const std::string& bytes,
                      sv1::UploadAttachmentResponse* out, int chunks = 3) {
    auto context = Context(token);
    auto writer = stub_->UploadAttachment(context.get(), out);
    sv1::UploadAttachmentRequest header;
    header.mutable_header()->set_session_id(session_id);
    header.mutable_header()->set_upload_id(upload_id);
    header.mutable_header()->set_file_name(file_name);
    header.mutable_header()->set_content_type(content_type);
    header.mutable_header()->set_size_bytes(static_cast<int64_t>(bytes.size()));
    header.mutable_header()->set_sha256(blob::ContentAddress(bytes));
    // The server may answer (a retry, a refusal) before the last chunk.
    bool open = writer->Write(header);
    const size_t step = (bytes.size() + chunks - 1) / chunks;
    for (size_t at = 0; open && at < bytes.size(); at += step) {
      sv1::UploadAttachmentRequest chunk;
      chunk.set_chunk(bytes.substr(at, step));
      open = writer->Write(chunk);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Uploads and expects the file stored, PENDING_SCAN; returns its id.
  std::string Stored(const std::string& session_id, const std::string& upload_id,
                     const std::string& file_name, const std::string& content_type,
                     const std::string& bytes) {
    sv1::UploadAttachmentResponse response;
    grpc::Status status =
        Upload(Customer(), session_id, upload_id, file_name, content_type, bytes, &response);
    EXPECT_TRUE(status.ok()) << file_name << ": " << status.error_message();
    EXPECT_FALSE(response.replayed());
    EXPECT_EQ(response.attachment().state(), sv1::ATTACHMENT_STATE_PENDING_SCAN);
    EXPECT_EQ(response.attachment().file_name(), file_name);
    EXPECT_EQ(response.attachment().session_id(), session_id);
    EXPECT_EQ(response.attachment().uploader_id(), kCustomer);
    return response.attachment().attachment_id();
  }

  // The session's `attachment_updated` events as the customer's stream
  // shows them (replayed from the start, then live) until each of `ids`
  // has had its verdict, for at most 20 s: each file as it stood last.
  std::map<std::string, sv1::Attachment> Verdicts(const std::string& session_id,
                                                  const std::vector<std::string>& ids) {
    std::map<std::string, sv1::Attachment> last;
    const auto all_decided = [&] {
      for (const std::string& id : ids) {
        auto it = last.find(id);
        if (it == last.end() || it->second.state() == sv1::ATTACHMENT_STATE_PENDING_SCAN) {
          return false;
        }
      }
      return true;
    };
    auto context = Context(Customer(), absl::Seconds(20));
    sv1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    auto stream = stub_->StreamSessionEvents(context.get(), request);
    sv1::StreamSessionEventsResponse response;
    while (!all_decided() && stream->Read(&response)) {
      if (response.event().has_attachment_updated()) {
        last[response.event().attachment_updated().attachment_id()] =
            response.event().attachment_updated();
      }
    }
    context->TryCancel();
    stream->Finish();
    return last;
  }

  // The session's events up to now.
  std::vector<sv1::SessionEvent> Events(const std::string& session_id) {
    std::vector<sv1::SessionEvent> events;
    auto context = Context(Customer());
    sv1::StreamSessionEventsRequest request;
    request.set_session_id(session_id);
    auto stream = stub_->StreamSessionEvents(context.get(), request);
    sv1::StreamSessionEventsResponse response;
    while (stream->Read(&response) && !response.has_caught_up()) {
      if (response.has_event()) events.push_back(response.event());
    }
    context->TryCancel();
    stream->Finish();
    return events;
  }

  Downloaded Download(const std::string& token, const std::string& session_id,
                      const std::string& attachment_id, bool prefer_url = false) {
    Downloaded out;
    sv1::DownloadAttachmentRequest request;
    request.set_session_id(session_id);
    request.set_attachment_id(attachment_id);
    request.set_prefer_url(prefer_url);
    auto context = Context(token);
    auto reader = stub_->DownloadAttachment(context.get(), request);
    sv1::DownloadAttachmentResponse response;
    while (reader->Read(&response)) {
      if (response.has_attachment()) out.attachment = response.attachment();
      if (response.has_chunk()) out.bytes += response.chunk();
      if (response.has_signed_url()) out.signed_url = response.signed_url();
    }
    out.status = reader->Finish();
    return out;
  }

  // The keys of every blob stored: files in the data folder's store (not
  // its temporary files), or the bucket's objects.
  std::vector<std::string> Blobs() {
    std::vector<std::string> keys;
    if (s3_ != nullptr) {
      absl::StatusOr<std::vector<std::string>> listed = Bucket()->List("", 1000);
      EXPECT_TRUE(listed.ok()) << listed.status();
      return listed.value_or(keys);
    }
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(data_dir() + "/attachments")) {
      if (entry.is_regular_file() &&
          entry.path().parent_path().filename() != ".incoming") {
        keys.push_back(entry.path().filename().string());
      }
    }
    return keys;
  }

  // The bucket, as the server reaches it.
  std::unique_ptr<blob::S3BlobStore> Bucket() const {
    blob::S3BlobStore::Options options;
    options.endpoint = s3_->endpoint();
    options.bucket = FakeS3Server::kBucket;
    options.access_key_id = FakeS3Server::kAccessKeyId;
    options.secret_access_key = FakeS3Server::kSecretAccessKey;
    auto store = blob::S3BlobStore::Create(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Removes the blob stored under `key` behind the server's back.
  void LoseBlob(const std::string& key) {
    if (s3_ != nullptr) {
      ASSERT_TRUE(Bucket()->Delete(key).ok());
      return;
    }
    ASSERT_TRUE(std::filesystem::remove(
        absl::StrCat(data_dir(), "/attachments/", key.substr(0, 2), "/", key)));
  }

  std::string dir_;
  testing::TestTokens tokens_;
  testing::ClamdServer clamd_;
  std::unique_ptr<FakeS3Server> s3_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<sv1::SessionsService::Stub> stub_;
};

TEST_P(AttachmentsProcessTest, AScreenshotAndARecordingReachTheAgentWithoutTheLocation) {
  const std::string session_id = QueuedSession();
  const std::string png = files::Png(/*metadata=*/true);
  const std::string mp4 = files::Mp4();
  ASSERT_TRUE(absl::StrContains(png, files::GpsLatitude()));
  const std::string png_id = Stored(session_id, "up-png", "screenshot.png", "image/png", png);
  const std::string mp4_id = Stored(session_id, "up-mp4", "recording.mp4", "video/mp4", mp4);

  std::map<std::string, sv1::Attachment> verdicts = Verdicts(session_id, {png_id, mp4_id});
  EXPECT_EQ(verdicts[png_id].state(), sv1::ATTACHMENT_STATE_CLEAN) << clamd_.log();
  EXPECT_EQ(verdicts[mp4_id].state(), sv1::ATTACHMENT_STATE_CLEAN) << clamd_.log();

  ASSERT_NO_FATAL_FAILURE(AssignAgent(session_id));
  const Downloaded screenshot = Download(Agent(), session_id, png_id);
  ASSERT_TRUE(screenshot.status.ok()) << screenshot.status.error_message();
  EXPECT_EQ(screenshot.attachment.content_type(), "image/png");
  EXPECT_EQ(screenshot.attachment.sha256(), blob::ContentAddress(screenshot.bytes));
  EXPECT_EQ(screenshot.attachment.size_bytes(), static_cast<int64_t>(screenshot.bytes.size()));
  EXPECT_NE(screenshot.bytes, png);
  EXPECT_FALSE(absl::StrContains(screenshot.bytes, files::GpsLatitude()));
  auto classifier = filetype::FileTypeClassifier::Create();
  ASSERT_TRUE(classifier.ok()) << classifier.status();
  absl::StatusOr<filetype::FileType> type = (*classifier)->Classify(screenshot.bytes, "image/png");
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(*type, filetype::FileType::kPng);

  const Downloaded recording = Download(Agent(), session_id, mp4_id);
  ASSERT_TRUE(recording.status.ok()) << recording.status.error_message();
  EXPECT_EQ(recording.attachment.content_type(), "video/mp4");
  EXPECT_TRUE(recording.bytes == mp4) << "the MP4 came back changed";

  sv1::SendMessageRequest send;
  send.set_session_id(session_id);
  send.set_client_message_id("msg-files");
  send.mutable_message()->set_text("Here is what I see.");
  send.mutable_message()->add_attachment_ids(png_id);
  send.mutable_message()->add_attachment_ids(mp4_id);
  sv1::SendMessageResponse sent;
  grpc::Status status = stub_->SendMessage(Context(Customer()).get(), send, &sent);
  ASSERT_TRUE(status.ok()) << status.error_message();

  sv1::ListMessagesRequest list;
  list.set_session_id(session_id);
  sv1::ListMessagesResponse listed;
  status = stub_->ListMessages(Context(Agent()).get(), list, &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const sv1::Message* message = nullptr;
  for (const sv1::Message& m : listed.messages()) {
    if (m.client_message_id() == "msg-files") message = &m;
  }
  ASSERT_NE(message, nullptr) << listed.DebugString();
  ASSERT_EQ(message->attachments_size(), 2);
  EXPECT_EQ(message->attachments(0).attachment_id(), png_id);
  EXPECT_EQ(message->attachments(0).state(), sv1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ(message->attachments(1).attachment_id(), mp4_id);
  EXPECT_EQ(message->attachments(1).state(), sv1::ATTACHMENT_STATE_CLEAN);

  // A signed URL from the object store; the bytes from a folder.
  const Downloaded by_url = Download(Agent(), session_id, mp4_id, /*prefer_url=*/true);
  ASSERT_TRUE(by_url.status.ok()) << by_url.status.error_message();
  if (GetParam() == Store::kFiles) {
    EXPECT_FALSE(by_url.signed_url.has_value());
    EXPECT_TRUE(by_url.bytes == mp4);
    return;
  }
  ASSERT_TRUE(by_url.signed_url.has_value());
  EXPECT_TRUE(by_url.bytes.empty());
  CURL* curl = curl_easy_init();
  ASSERT_NE(curl, nullptr);
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, by_url.signed_url->url().c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  const CURLcode code = curl_easy_perform(curl);
  long http_status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
  curl_easy_cleanup(curl);
  ASSERT_EQ(code, CURLE_OK) << curl_easy_strerror(code);
  EXPECT_EQ(http_status, 200);
  EXPECT_TRUE(body == mp4) << "the signed URL served other bytes";
}

TEST_P(AttachmentsProcessTest, MalwareIsRejectedAndNeverServed) {
  const std::string session_id = QueuedSession();
  const std::string eicar_id =
      Stored(session_id, "up-eicar", "notes.txt", "text/plain", testing::Eicar());
  const sv1::Attachment verdict = Verdicts(session_id, {eicar_id})[eicar_id];
  EXPECT_EQ(verdict.state(), sv1::ATTACHMENT_STATE_REJECTED) << clamd_.log();
  EXPECT_TRUE(absl::StrContains(verdict.rejection_reason(), testing::kEicarSignature))
      << verdict.rejection_reason();

  ASSERT_NO_FATAL_FAILURE(AssignAgent(session_id));
  for (const std::string& token : {Customer(), Agent(), Supervisor()}) {
    const Downloaded downloaded = Download(token, session_id, eicar_id);
    EXPECT_EQ(downloaded.status.error_code(), StatusCode::FAILED_PRECONDITION)
        << downloaded.status.error_message();
    EXPECT_TRUE(absl::StrContains(downloaded.status.error_message(), "REJECTED"))
        << downloaded.status.error_message();
    EXPECT_TRUE(downloaded.bytes.empty());
  }

  sv1::SendMessageRequest send;
  send.set_session_id(session_id);
  send.set_client_message_id("msg-eicar");
  send.mutable_message()->set_text("See the file.");
  send.mutable_message()->add_attachment_ids(eicar_id);
  sv1::SendMessageResponse sent;
  const grpc::Status status = stub_->SendMessage(Context(Customer()).get(), send, &sent);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "REJECTED")) << status.error_message();
}

TEST_P(AttachmentsProcessTest, AnExecutableClaimingToBeAPngIsRefusedNamingBothTypes) {
  const std::string session_id = QueuedSession();
  const size_t blobs_before = Blobs().size();
  sv1::UploadAttachmentResponse response;
  const grpc::Status status = Upload(Customer(), session_id, "up-elf", "screenshot.png",
                                     "image/png", files::Elf(), &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "image/png")) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "ELF")) << status.error_message();
  EXPECT_EQ(Blobs().size(), blobs_before);
}

TEST_P(AttachmentsProcessTest, ARetriedUploadIsAnsweredWithTheFirstAndStoredOnce) {
  const std::string session_id = QueuedSession();
  const std::string pdf = files::Pdf();
  const std::vector<std::string> before = Blobs();
  const std::string id = Stored(session_id, "up-retry", "statement.pdf", "application/pdf", pdf);
  std::vector<std::string> after = Blobs();
  ASSERT_EQ(after.size(), before.size() + 1);

  // The client lost the answer and sends the same upload again.
  sv1::UploadAttachmentResponse retried;
  const grpc::Status status = Upload(Customer(), session_id, "up-retry", "statement.pdf",
                                     "application/pdf", pdf, &retried, /*chunks=*/2);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(retried.replayed());
  EXPECT_EQ(retried.attachment().attachment_id(), id);
  EXPECT_EQ(Blobs(), after);
  EXPECT_EQ(std::count(after.begin(), after.end(), retried.attachment().sha256()), 1);

  // One file in the session: one upload event, one verdict.
  EXPECT_EQ(Verdicts(session_id, {id})[id].state(), sv1::ATTACHMENT_STATE_CLEAN);
  int uploads = 0;
  for (const sv1::SessionEvent& event : Events(session_id)) {
    if (event.has_attachment_updated() &&
        event.attachment_updated().state() == sv1::ATTACHMENT_STATE_PENDING_SCAN) {
      EXPECT_EQ(event.attachment_updated().attachment_id(), id);
      ++uploads;
    }
  }
  EXPECT_EQ(uploads, 1);
}

TEST_P(AttachmentsProcessTest, AnotherCustomerCannotTellAFileExists) {
  const std::string session_id = QueuedSession();
  const std::string id = Stored(session_id, "up-log", "log.txt", "text/plain", files::Text());
  ASSERT_EQ(Verdicts(session_id, {id})[id].state(), sv1::ATTACHMENT_STATE_CLEAN);
  const std::string other_session = QueuedSession(kOtherCustomer);
  const std::string other = Customer(kOtherCustomer);

  // On the first customer's session, and on the other's own session: the
  // file answers as a missing id does.
  for (const std::string& session : {session_id, other_session}) {
    const Downloaded existing = Download(other, session, id);
    const Downloaded missing = Download(other, session, "no-such-attachment");
    EXPECT_EQ(existing.status.error_code(), StatusCode::NOT_FOUND) << session;
    EXPECT_EQ(missing.status.error_code(), StatusCode::NOT_FOUND) << session;
    EXPECT_EQ(existing.status.error_message(), missing.status.error_message()) << session;
    EXPECT_TRUE(existing.bytes.empty());
  }
  // The owner still gets it.
  EXPECT_TRUE(Download(Customer(), session_id, id).bytes == files::Text());
}

TEST_P(AttachmentsProcessTest, FilesSurviveARestart) {
  const std::string session_id = QueuedSession();
  const std::string png = files::Png(/*metadata=*/true);
  const std::string mp4 = files::Mp4();
  const std::string png_id = Stored(session_id, "up-png", "screenshot.png", "image/png", png);
  const std::string mp4_id = Stored(session_id, "up-mp4", "recording.mp4", "video/mp4", mp4);
  const std::string eicar_id =
      Stored(session_id, "up-eicar", "notes.txt", "text/plain", testing::Eicar());
  std::map<std::string, sv1::Attachment> verdicts =
      Verdicts(session_id, {png_id, mp4_id, eicar_id});
  ASSERT_EQ(verdicts[png_id].state(), sv1::ATTACHMENT_STATE_CLEAN);
  ASSERT_EQ(verdicts[mp4_id].state(), sv1::ATTACHMENT_STATE_CLEAN);
  ASSERT_EQ(verdicts[eicar_id].state(), sv1::ATTACHMENT_STATE_REJECTED);
  const Downloaded screenshot = Download(Customer(), session_id, png_id);
  ASSERT_TRUE(screenshot.status.ok()) << screenshot.status.error_message();

  ASSERT_NO_FATAL_FAILURE(Restart());
  // The start-up check found every record's blob.
  EXPECT_FALSE(absl::StrContains(server_->log(), "attachment_blobs_missing")) << server_->log();

  const Downloaded screenshot_again = Download(Customer(), session_id, png_id);
  ASSERT_TRUE(screenshot_again.status.ok()) << screenshot_again.status.error_message();
  EXPECT_TRUE(screenshot_again.bytes == screenshot.bytes);
  EXPECT_EQ(screenshot_again.attachment.sha256(), verdicts[png_id].sha256());
  const Downloaded recording = Download(Customer(), session_id, mp4_id);
  ASSERT_TRUE(recording.status.ok()) << recording.status.error_message();
  EXPECT_TRUE(recording.bytes == mp4);
  EXPECT_EQ(Download(Customer(), session_id, eicar_id).status.error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(server_->Terminate(absl::Seconds(10)), 0) << server_->log();
}

// The other side of FilesSurviveARestart's check: a lost file is reported
// at start, and never served.
TEST_P(AttachmentsProcessTest, ALostFileIsReportedAtStart) {
  const std::string session_id = QueuedSession();
  const std::string id = Stored(session_id, "up-log", "log.txt", "text/plain", files::Text());
  const sv1::Attachment clean = Verdicts(session_id, {id})[id];
  ASSERT_EQ(clean.state(), sv1::ATTACHMENT_STATE_CLEAN);

  ASSERT_EQ(server_->Terminate(absl::Seconds(10)), 0) << server_->log();
  ASSERT_NO_FATAL_FAILURE(LoseBlob(clean.sha256()));
  ASSERT_NO_FATAL_FAILURE(Start("second.log"));
  EXPECT_TRUE(absl::StrContains(server_->log(), "attachment_blobs_missing")) << server_->log();
  EXPECT_TRUE(absl::StrContains(server_->log(), id)) << server_->log();
  const Downloaded downloaded = Download(Customer(), session_id, id);
  EXPECT_FALSE(downloaded.status.ok());
  EXPECT_TRUE(downloaded.bytes.empty());
}

INSTANTIATE_TEST_SUITE_P(BothStores, AttachmentsProcessTest,
                         ::testing::Values(Store::kFiles, Store::kS3), StoreName);

}  // namespace
}  // namespace switchboard
