#include "libs/blob/s3_blob_store.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/blob/sigv4.h"

namespace switchboard::blob {
namespace {

// The SHA-256 of an empty payload, which SigV4 signs for GET, HEAD, DELETE.
constexpr char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// What the store said, for an error message: status and the start of its
// XML error (<Code>, <Message>).
absl::Status StoreError(absl::string_view what, long status, absl::string_view body) {
  const std::string detail =
      absl::StrCat(what, ": object store answered HTTP ", status, " ", body.substr(0, 300));
  if (status >= 500 || status == 429) return absl::UnavailableError(detail);
  return absl::InternalError(detail);
}

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct Upload {
  absl::string_view bytes;
  size_t sent = 0;
};

size_t Feed(char* buffer, size_t size, size_t count, void* in) {
  auto* upload = static_cast<Upload*>(in);
  const size_t n = std::min(size * count, upload->bytes.size() - upload->sent);
  std::memcpy(buffer, upload->bytes.data() + upload->sent, n);
  upload->sent += n;
  return n;
}

// The text of every <Key>…</Key> in a ListObjectsV2 answer (keys are hex,
// so nothing in them needs XML unescaping).
std::vector<std::string> KeysIn(absl::string_view xml) {
  std::vector<std::string> keys;
  size_t at = 0;
  while ((at = xml.find("<Key>", at)) != absl::string_view::npos) {
    at += 5;
    const size_t end = xml.find("</Key>", at);
    if (end == absl::string_view::npos) break;
    keys.emplace_back(xml.substr(at, end - at));
    at = end;
  }
  return keys;
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3BlobStore>> S3BlobStore::Create(Options options) {
  absl::string_view rest = options.endpoint;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "object store endpoint must start with http:// or https://: \"", options.endpoint,
        "\""));
  }
  absl::ConsumeSuffix(&rest, "/");
  if (rest.empty() || absl::StrContains(rest, '/')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "object store endpoint must be scheme://host[:port] with no path: \"",
        options.endpoint, "\""));
  }
  if (options.bucket.empty() || options.access_key_id.empty() ||
      options.secret_access_key.empty() || options.region.empty()) {
    return absl::InvalidArgumentError(
        "object store needs a bucket, a region, an access key id and a secret access key");
  }
  if (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  const std::string host(rest);
  return std::unique_ptr<S3BlobStore>(new S3BlobStore(std::move(options), host));
}

S3BlobStore::S3BlobStore(Options options, std::string host)
    : options_(std::move(options)), host_(std::move(host)) {
  // Process-wide and idempotent in the libcurl Debian ships (7.88: thread-safe).
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

absl::StatusOr<S3BlobStore::Response> S3BlobStore::Send(const std::string& method,
                                                        const std::string& path_and_query,
                                                        absl::string_view body,
                                                        const std::string& payload_sha256) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::ResourceExhaustedError("libcurl: no handle");
  const std::string url = options_.endpoint + path_and_query;
  const std::string sigv4 = absl::StrCat("aws:amz:", options_.region, ":s3");
  const std::string user = absl::StrCat(options_.access_key_id, ":", options_.secret_access_key);
  const std::string content_sha = "x-amz-content-sha256: " + payload_sha256;
  curl_slist* headers = curl_slist_append(nullptr, content_sha.c_str());
  Response response;
  Upload upload{body};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(curl, CURLOPT_USERPWD, user.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  if (method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, Feed);
    curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (code != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("object store ", options_.endpoint, " ", method,
                                               " failed: ", curl_easy_strerror(code)));
  }
  return response;
}

absl::StatusOr<std::string> S3BlobStore::Put(absl::string_view bytes) {
  std::string key = ContentAddress(bytes);
  absl::StatusOr<Response> response =
      Send("PUT", absl::StrCat("/", options_.bucket, "/", key), bytes, key);
  if (!response.ok()) return response.status();
  if (response->status != 200) return StoreError("put " + key, response->status, response->body);
  return key;
}

absl::StatusOr<std::string> S3BlobStore::Get(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  absl::StatusOr<Response> response =
      Send("GET", absl::StrCat("/", options_.bucket, "/", key), {}, kEmptySha256);
  if (!response.ok()) return response.status();
  if (response->status == 404) return absl::NotFoundError(absl::StrCat("no blob ", key));
  if (response->status != 200) {
    return StoreError(absl::StrCat("get ", key), response->status, response->body);
  }
  return std::move(response->body);
}

absl::StatusOr<bool> S3BlobStore::Exists(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  absl::StatusOr<Response> response =
      Send("HEAD", absl::StrCat("/", options_.bucket, "/", key), {}, kEmptySha256);
  if (!response.ok()) return response.status();
  if (response->status == 404) return false;
  if (response->status != 200) {
    return StoreError(absl::StrCat("head ", key), response->status, response->body);
  }
  return true;
}

absl::Status S3BlobStore::Delete(absl::string_view key) {
  if (absl::Status s = CheckContentAddress(key); !s.ok()) return s;
  absl::StatusOr<Response> response =
      Send("DELETE", absl::StrCat("/", options_.bucket, "/", key), {}, kEmptySha256);
  if (!response.ok()) return response.status();
  // S3 answers 204 whether or not the object was there.
  if (response->status != 204 && response->status != 200 && response->status != 404) {
    return StoreError(absl::StrCat("delete ", key), response->status, response->body);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> S3BlobStore::List(absl::string_view after, int limit) {
  if (!after.empty()) {
    if (absl::Status s = CheckContentAddress(after); !s.ok()) return s;
  }
  // Parameters in SigV4's canonical (sorted) order; hex needs no escaping.
  std::string query = absl::StrCat("/", options_.bucket, "?list-type=2&max-keys=", limit);
  if (!after.empty()) absl::StrAppend(&query, "&start-after=", after);
  absl::StatusOr<Response> response = Send("GET", query, {}, kEmptySha256);
  if (!response.ok()) return response.status();
  if (response->status != 200) return StoreError("list", response->status, response->body);
  std::vector<std::string> keys;
  for (std::string& key : KeysIn(response->body)) {
    if (IsContentAddress(key) && key > after) keys.push_back(std::move(key));
  }
  return keys;
}

std::optional<std::string> S3BlobStore::SignedUrl(absl::string_view key,
                                                  absl::Duration expires_in) {
  if (!IsContentAddress(key)) return std::nullopt;
  const std::string path = absl::StrCat("/", options_.bucket, "/", key);
  PresignRequest request{"GET",          host_,
                         path,           options_.region,
                         options_.access_key_id, options_.secret_access_key,
                         options_.clock->Now(),  expires_in};
  return absl::StrCat(options_.endpoint, path, "?", PresignQuery(request));
}

}  // namespace switchboard::blob
