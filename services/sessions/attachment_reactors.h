#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "libs/server/blocking_pool.h"
#include "services/sessions/attachments.h"
#include "services/sessions/rules.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard::sessions {

// The gRPC side of UploadAttachment and DownloadAttachment for an
// authenticated caller: the chunk stream in and out, the upload's time
// limit, and the attachment logic (blocking) run on `pool`. Each reactor
// keeps `permit` (the caller's unit of calls in flight) until gRPC is done
// with it, and deletes itself then.

// Reads the header, asks Attachments::BeginUpload on the pool (a retry of a
// stored upload is answered at once), then gathers the chunks, refusing any
// beyond the declared size, and once the client has sent all of them hands
// the file to Attachments::FinishUpload. Ends with DEADLINE_EXCEEDED when
// the whole upload takes longer than `time_limit`.
grpc::ServerReadReactor<v1::UploadAttachmentRequest>* StartUpload(
    Attachments* attachments, server::BlockingPool* pool, Caller caller,
    v1::UploadAttachmentResponse* response, absl::Duration time_limit,
    std::shared_ptr<void> permit);

// Asks Attachments::Get on the pool, then writes the attachment and its
// bytes in chunks of at most kDownloadChunkBytes, or the signed URL.
grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* StartDownload(
    Attachments* attachments, server::BlockingPool* pool, Caller caller,
    const v1::DownloadAttachmentRequest& request, std::shared_ptr<void> permit);

// Reactors that end the call with `status` at once (a refused caller).
grpc::ServerReadReactor<v1::UploadAttachmentRequest>* RefusedUpload(const grpc::Status& status);
grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* RefusedDownload(
    const grpc::Status& status);

// The largest chunk a client may send, and the server sends.
inline constexpr size_t kUploadChunkBytes = 1 << 20;
inline constexpr size_t kDownloadChunkBytes = 1 << 20;

}  // namespace switchboard::sessions
