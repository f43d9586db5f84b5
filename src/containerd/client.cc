#include "containerd/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace faasd::containerd {

namespace content = api::services::content::v1;
namespace images = api::services::images::v1;
namespace snapshots = api::services::snapshots::v1;
namespace containers = api::services::containers::v1;
namespace tasks = api::services::tasks::v1;

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

Connection::Connection(const std::string& address)
    : address_(absl::StartsWith(address, "unix://") ? address.substr(7) : address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  // Reconnect quickly after containerd restarts instead of gRPC's long default backoff. The
  // minimum is the longest one connection attempt may take: with gRPC 1.51's default (20 s), an
  // attempt made while a restarting containerd's socket accepted but did not serve yet kept
  // calls failing ~4 s after containerd was back (tests/integration/test_faults.py measures it).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  channel_ =
      grpc::CreateCustomChannel("unix://" + address_, grpc::InsecureChannelCredentials(), args);
}

void Connection::Prepare(grpc::ClientContext& ctx, const CallScope& scope) const {
  // A channel that failed waits out its backoff before it tries the socket again and fails
  // every call meanwhile; a call made then tries at once (a refused connect costs little).
  if (channel_->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    grpc::experimental::ChannelResetConnectionBackoff(channel_.get());
  }
  if (!scope.ns.empty()) ctx.AddMetadata("containerd-namespace", scope.ns);
  if (!scope.lease.empty()) ctx.AddMetadata("containerd-lease", scope.lease);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + scope.timeout));
}

// ---- version, namespaces, leases -------------------------------------------------------------

VersionService::VersionService(const Connection& conn)
    : conn_(conn), stub_(api::services::version::v1::Version::NewStub(conn.channel())) {}

absl::StatusOr<std::string> VersionService::Version(absl::Duration timeout) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{"", "", timeout});
  google::protobuf::Empty req;
  api::services::version::v1::VersionResponse resp;
  absl::Status s =
      FromGrpc(stub_->Version(&ctx, req, &resp), absl::StrCat("containerd at ", conn_.address()));
  if (!s.ok()) return s;
  return resp.version();
}

NamespaceService::NamespaceService(const Connection& conn)
    : conn_(conn), stub_(api::services::namespaces::v1::Namespaces::NewStub(conn.channel())) {}

absl::Status NamespaceService::Ensure(const std::string& ns, const Labels& labels) {
  namespace nsapi = api::services::namespaces::v1;
  {
    grpc::ClientContext ctx;
    conn_.Prepare(ctx, CallScope{});
    nsapi::GetNamespaceRequest req;
    req.set_name(ns);
    nsapi::GetNamespaceResponse resp;
    grpc::Status st = stub_->Get(&ctx, req, &resp);
    if (st.ok()) {
      bool missing = false;
      for (const auto& [k, v] : labels) {
        auto it = resp.namespace_().labels().find(k);
        if (it == resp.namespace_().labels().end() || it->second != v) missing = true;
      }
      if (!missing) return absl::OkStatus();
      grpc::ClientContext uctx;
      conn_.Prepare(uctx,
                    CallScope{ns, "", absl::Seconds(30)});  // containerd publishes the event in ns
      nsapi::UpdateNamespaceRequest ureq;
      *ureq.mutable_namespace_() = resp.namespace_();
      for (const auto& [k, v] : labels) (*ureq.mutable_namespace_()->mutable_labels())[k] = v;
      nsapi::UpdateNamespaceResponse uresp;
      return FromGrpc(stub_->Update(&uctx, ureq, &uresp), absl::StrCat("namespaces.Update ", ns));
    }
    if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
      return FromGrpc(st, absl::StrCat("namespaces.Get ", ns));
    }
  }
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{ns, "", absl::Seconds(30)});
  nsapi::CreateNamespaceRequest req;
  req.mutable_namespace_()->set_name(ns);
  for (const auto& [k, v] : labels) (*req.mutable_namespace_()->mutable_labels())[k] = v;
  nsapi::CreateNamespaceResponse resp;
  grpc::Status st = stub_->Create(&ctx, req, &resp);
  if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) return absl::OkStatus();
  return FromGrpc(st, absl::StrCat("namespaces.Create ", ns));
}

absl::StatusOr<std::vector<api::services::namespaces::v1::Namespace>> NamespaceService::List() {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{});
  api::services::namespaces::v1::ListNamespacesRequest req;
  api::services::namespaces::v1::ListNamespacesResponse resp;
  absl::Status s = FromGrpc(stub_->List(&ctx, req, &resp), "namespaces.List");
  if (!s.ok()) return s;
  return std::vector<api::services::namespaces::v1::Namespace>(resp.namespaces().begin(),
                                                               resp.namespaces().end());
}

absl::StatusOr<api::services::namespaces::v1::Namespace> NamespaceService::Get(
    const std::string& ns) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{});
  api::services::namespaces::v1::GetNamespaceRequest req;
  req.set_name(ns);
  api::services::namespaces::v1::GetNamespaceResponse resp;
  absl::Status s = FromGrpc(stub_->Get(&ctx, req, &resp), absl::StrCat("namespaces.Get ", ns));
  if (!s.ok()) return s;
  return resp.namespace_();
}

absl::Status NamespaceService::Create(const std::string& ns, const Labels& labels) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{ns, "", absl::Seconds(30)});
  api::services::namespaces::v1::CreateNamespaceRequest req;
  req.mutable_namespace_()->set_name(ns);
  for (const auto& [k, v] : labels) (*req.mutable_namespace_()->mutable_labels())[k] = v;
  api::services::namespaces::v1::CreateNamespaceResponse resp;
  return FromGrpc(stub_->Create(&ctx, req, &resp), absl::StrCat("namespaces.Create ", ns));
}

absl::Status NamespaceService::SetLabels(const std::string& ns, const Labels& labels) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{ns, "", absl::Seconds(30)});
  api::services::namespaces::v1::UpdateNamespaceRequest req;
  req.mutable_namespace_()->set_name(ns);
  for (const auto& [k, v] : labels) (*req.mutable_namespace_()->mutable_labels())[k] = v;
  // No mask: containerd replaces every label with the request's (a "labels" path is refused).
  api::services::namespaces::v1::UpdateNamespaceResponse resp;
  return FromGrpc(stub_->Update(&ctx, req, &resp), absl::StrCat("namespaces.Update ", ns));
}

absl::Status NamespaceService::Delete(const std::string& ns) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{ns, "", absl::Seconds(30)});
  api::services::namespaces::v1::DeleteNamespaceRequest req;
  req.set_name(ns);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Delete(&ctx, req, &resp), absl::StrCat("namespaces.Delete ", ns));
}

LeaseService::LeaseService(const Connection& conn)
    : conn_(conn), stub_(api::services::leases::v1::Leases::NewStub(conn.channel())) {}

absl::StatusOr<std::string> LeaseService::Create(const CallScope& scope, absl::Duration expire) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  api::services::leases::v1::CreateRequest req;
  (*req.mutable_labels())["containerd.io/gc.expire"] =
      absl::FormatTime(absl::RFC3339_sec, absl::Now() + expire, absl::UTCTimeZone());
  api::services::leases::v1::CreateResponse resp;
  absl::Status s = FromGrpc(stub_->Create(&ctx, req, &resp), "leases.Create");
  if (!s.ok()) return s;
  return resp.lease().id();
}

absl::Status LeaseService::Delete(const CallScope& scope, const std::string& id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  api::services::leases::v1::DeleteRequest req;
  req.set_id(id);
  google::protobuf::Empty resp;
  grpc::Status st = stub_->Delete(&ctx, req, &resp);
  if (st.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();
  return FromGrpc(st, absl::StrCat("leases.Delete ", id));
}

absl::Status LeaseService::AddResource(const CallScope& scope, const std::string& type,
                                       const std::string& id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, CallScope{scope.ns, "", scope.timeout});
  api::services::leases::v1::AddResourceRequest req;
  req.set_id(scope.lease);
  req.mutable_resource()->set_id(id);
  req.mutable_resource()->set_type(type);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->AddResource(&ctx, req, &resp),
                  absl::StrCat("leases.AddResource ", scope.lease, " ", type, " ", id));
}

absl::Status LeaseService::HoldContent(const CallScope& scope, const std::string& digest) {
  return AddResource(scope, "content", digest);
}

absl::Status LeaseService::HoldSnapshot(const CallScope& scope, const std::string& snapshotter,
                                        const std::string& key) {
  return AddResource(scope, absl::StrCat("snapshots/", snapshotter), key);
}

// ---- content -----------------------------------------------------------------------------------

ContentStore::ContentStore(const Connection& conn)
    : conn_(conn), stub_(content::Content::NewStub(conn.channel())) {}

absl::StatusOr<ContentInfo> ContentStore::Info(const CallScope& scope, const std::string& digest) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  content::InfoRequest req;
  req.set_digest(digest);
  content::InfoResponse resp;
  absl::Status s = FromGrpc(stub_->Info(&ctx, req, &resp), absl::StrCat("content.Info ", digest));
  if (!s.ok()) return s;
  ContentInfo info;
  info.digest = resp.info().digest();
  info.size = resp.info().size();
  info.labels.insert(resp.info().labels().begin(), resp.info().labels().end());
  return info;
}

absl::Status ContentStore::AddLabels(const CallScope& scope, const std::string& digest,
                                     const Labels& labels) {
  if (labels.empty()) return absl::OkStatus();
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  content::UpdateRequest req;
  req.mutable_info()->set_digest(digest);
  for (const auto& [k, v] : labels) {
    (*req.mutable_info()->mutable_labels())[k] = v;
    req.mutable_update_mask()->add_paths(absl::StrCat("labels.", k));
  }
  content::UpdateResponse resp;
  return FromGrpc(stub_->Update(&ctx, req, &resp), absl::StrCat("content.Update ", digest));
}

absl::StatusOr<std::string> ContentStore::ReadAll(const CallScope& scope, const std::string& digest,
                                                  int64_t max_bytes) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  content::ReadContentRequest req;
  req.set_digest(digest);
  auto reader = stub_->Read(&ctx, req);
  std::string out;
  content::ReadContentResponse chunk;
  while (reader->Read(&chunk)) {
    out += chunk.data();
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      ctx.TryCancel();
      reader->Finish();
      return absl::ResourceExhaustedError(
          absl::StrCat("content.Read ", digest, ": larger than ", max_bytes, " bytes"));
    }
  }
  absl::Status s = FromGrpc(reader->Finish(), absl::StrCat("content.Read ", digest));
  if (!s.ok()) return s;
  return out;
}

namespace {

class GrpcContentWriter : public ContentWriter {
 public:
  GrpcContentWriter(content::Content::Stub* stub, const Connection& conn, const CallScope& scope,
                    std::string ref, std::string expected, int64_t total)
      : ref_(std::move(ref)), expected_(std::move(expected)), total_(total) {
    conn.Prepare(ctx_, scope);
    stream_ = stub->Write(&ctx_);
  }
  ~GrpcContentWriter() override {
    if (stream_ && !finished_) {
      ctx_.TryCancel();
      stream_->Finish();
    }
  }

  // Learns how much an earlier, interrupted write of the same ref already holds.
  absl::StatusOr<int64_t> Stat() {
    content::WriteContentRequest req;
    req.set_action(content::STAT);
    req.set_ref(ref_);
    req.set_total(total_);
    req.set_expected(expected_);
    if (!stream_->Write(req)) return Broken("stat");
    content::WriteContentResponse resp;
    if (!stream_->Read(&resp)) return Broken("stat");
    offset_ = resp.offset();
    return offset_;
  }

  absl::Status Write(std::string_view chunk) override {
    content::WriteContentRequest req;
    req.set_action(content::WRITE);
    req.set_ref(ref_);
    req.set_offset(offset_);
    req.set_data(chunk.data(), chunk.size());
    if (!stream_->Write(req)) return Broken("write");
    content::WriteContentResponse resp;
    if (!stream_->Read(&resp)) return Broken("write");
    offset_ += static_cast<int64_t>(chunk.size());
    return absl::OkStatus();
  }

  absl::Status Commit(const Labels& labels) override {
    content::WriteContentRequest req;
    req.set_action(content::COMMIT);
    req.set_ref(ref_);
    req.set_offset(offset_);
    req.set_total(total_);
    req.set_expected(expected_);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    if (!stream_->Write(req)) return Broken("commit");
    content::WriteContentResponse resp;
    if (!stream_->Read(&resp)) return Broken("commit");
    stream_->WritesDone();
    // containerd's server "pumps through the last message" once more as it returns; gRPC's
    // Finish() waits until every message is read, so drain (bounded) first.
    for (int i = 0; i < 4 && stream_->Read(&resp); ++i) {
    }
    finished_ = true;
    grpc::Status st = stream_->Finish();
    if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) return absl::OkStatus();
    return FromGrpc(st, absl::StrCat("content.Write ", expected_));
  }

  int64_t offset() const override { return offset_; }

 private:
  absl::Status Broken(absl::string_view step) {
    stream_->WritesDone();
    content::WriteContentResponse drain;
    for (int i = 0; i < 4 && stream_->Read(&drain); ++i) {
    }
    finished_ = true;
    grpc::Status st = stream_->Finish();
    if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      return absl::AlreadyExistsError(absl::StrCat("content ", expected_, " exists"));
    }
    if (st.ok()) {
      return absl::InternalError(
          absl::StrCat("content.Write ", expected_, ": stream closed during ", step));
    }
    return FromGrpc(st, absl::StrCat("content.Write ", expected_, " (", step, ")"));
  }

  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<content::WriteContentRequest, content::WriteContentResponse>>
      stream_;
  std::string ref_, expected_;
  int64_t total_;
  int64_t offset_ = 0;
  bool finished_ = false;
};

}  // namespace

absl::StatusOr<bool> ContentStore::Ingest(
    const CallScope& scope, const std::string& ref, const std::string& digest, int64_t size,
    Labels labels, const std::function<absl::Status(ContentWriter&, Labels*)>& write) {
  absl::StatusOr<ContentInfo> info = Info(scope, digest);
  if (info.ok()) {
    absl::Status s = AddLabels(scope, digest, labels);
    if (!s.ok()) return s;
    return false;
  }
  if (info.status().code() != absl::StatusCode::kNotFound) return info.status();
  absl::StatusOr<std::unique_ptr<ContentWriter>> w = OpenWriter(scope, ref, digest, size);
  if (w.status().code() == absl::StatusCode::kAlreadyExists) {
    absl::Status s = AddLabels(scope, digest, labels);
    if (!s.ok()) return s;
    return false;
  }
  if (!w.ok()) return w.status();
  const bool shared = size > 0 && (*w)->offset() == size;
  if (!shared) {
    absl::Status s = write(**w, &labels);
    if (!s.ok()) {
      // Callers pass a fresh ref each attempt, so a partial write is never resumed: without
      // an abort it would stay in containerd's content store (`ctr content active`) for good.
      w->reset();  // closes the stream, which releases containerd's lock on the ref
      (void)Abort(scope, ref);
      return s;
    }
  }
  absl::Status s = (*w)->Commit(labels);
  if (!s.ok()) return s;
  return !shared;
}

absl::Status ContentStore::Abort(const CallScope& scope, const std::string& ref) {
  absl::Status s;
  // containerd releases the ref's lock as its Write handler returns, which may be just after
  // our stream closed: "locked" is Unavailable, and short-lived.
  for (int attempt = 0; attempt < 10; ++attempt) {
    grpc::ClientContext ctx;
    conn_.Prepare(ctx, scope);
    content::AbortRequest req;
    req.set_ref(ref);
    google::protobuf::Empty resp;
    s = FromGrpc(stub_->Abort(&ctx, req, &resp), absl::StrCat("content.Abort ", ref));
    if (s.ok() || absl::IsNotFound(s) || !absl::IsUnavailable(s)) return s;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return s;
}

absl::StatusOr<std::unique_ptr<ContentWriter>> ContentStore::OpenWriter(
    const CallScope& scope, const std::string& ref, const std::string& expected_digest,
    int64_t total) {
  auto writer =
      std::make_unique<GrpcContentWriter>(stub_.get(), conn_, scope, ref, expected_digest, total);
  absl::StatusOr<int64_t> offset = writer->Stat();
  if (!offset.ok()) return offset.status();
  if (*offset != 0 && *offset != total) {
    // A stale partial write under this ref: we always stream from the start, so make the ref
    // unique per attempt instead of resuming (callers pass a fresh ref each time). A whole blob
    // is one containerd holds for another namespace: it only needs committing here.
    return absl::FailedPreconditionError(absl::StrCat("content.Write ", expected_digest, ": ref ",
                                                      ref, " already has ", *offset, " bytes"));
  }
  return std::unique_ptr<ContentWriter>(std::move(writer));
}

// ---- images ------------------------------------------------------------------------------------

ImageStore::ImageStore(const Connection& conn)
    : conn_(conn), stub_(images::Images::NewStub(conn.channel())) {}

absl::StatusOr<images::Image> ImageStore::Get(const CallScope& scope, const std::string& name) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  images::GetImageRequest req;
  req.set_name(name);
  images::GetImageResponse resp;
  absl::Status s = FromGrpc(stub_->Get(&ctx, req, &resp), absl::StrCat("images.Get ", name));
  if (!s.ok()) return s;
  return resp.image();
}

absl::Status ImageStore::Put(const CallScope& scope, const images::Image& image) {
  {
    grpc::ClientContext ctx;
    conn_.Prepare(ctx, scope);
    images::CreateImageRequest req;
    *req.mutable_image() = image;
    images::CreateImageResponse resp;
    grpc::Status st = stub_->Create(&ctx, req, &resp);
    if (st.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return FromGrpc(st, absl::StrCat("images.Create ", image.name()));
    }
  }
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  images::UpdateImageRequest req;
  *req.mutable_image() = image;
  req.mutable_update_mask()->add_paths("target");
  req.mutable_update_mask()->add_paths("labels");
  images::UpdateImageResponse resp;
  return FromGrpc(stub_->Update(&ctx, req, &resp), absl::StrCat("images.Update ", image.name()));
}

absl::StatusOr<std::vector<images::Image>> ImageStore::List(const CallScope& scope) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  images::ListImagesRequest req;
  images::ListImagesResponse resp;
  absl::Status s = FromGrpc(stub_->List(&ctx, req, &resp), "images.List");
  if (!s.ok()) return s;
  return std::vector<images::Image>(resp.images().begin(), resp.images().end());
}

absl::Status ImageStore::Delete(const CallScope& scope, const std::string& name) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  images::DeleteImageRequest req;
  req.set_name(name);
  req.set_sync(true);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Delete(&ctx, req, &resp), absl::StrCat("images.Delete ", name));
}

// ---- snapshots, diff ---------------------------------------------------------------------------

SnapshotService::SnapshotService(const Connection& conn, std::string snapshotter)
    : conn_(conn),
      snapshotter_(std::move(snapshotter)),
      stub_(snapshots::Snapshots::NewStub(conn.channel())) {}

absl::StatusOr<Mounts> SnapshotService::Prepare(const CallScope& scope, const std::string& key,
                                                const std::string& parent, const Labels& labels) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  snapshots::PrepareSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(key);
  req.set_parent(parent);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  snapshots::PrepareSnapshotResponse resp;
  absl::Status s =
      FromGrpc(stub_->Prepare(&ctx, req, &resp), absl::StrCat("snapshots.Prepare ", key));
  if (!s.ok()) return s;
  return Mounts(resp.mounts().begin(), resp.mounts().end());
}

absl::StatusOr<Mounts> SnapshotService::GetMounts(const CallScope& scope, const std::string& key) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  snapshots::MountsRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(key);
  snapshots::MountsResponse resp;
  absl::Status s =
      FromGrpc(stub_->Mounts(&ctx, req, &resp), absl::StrCat("snapshots.Mounts ", key));
  if (!s.ok()) return s;
  return Mounts(resp.mounts().begin(), resp.mounts().end());
}

absl::Status SnapshotService::Commit(const CallScope& scope, const std::string& name,
                                     const std::string& key, const Labels& labels) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  snapshots::CommitSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_name(name);
  req.set_key(key);
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Commit(&ctx, req, &resp), absl::StrCat("snapshots.Commit ", name));
}

absl::Status SnapshotService::Stat(const CallScope& scope, const std::string& key) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  snapshots::StatSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(key);
  snapshots::StatSnapshotResponse resp;
  return FromGrpc(stub_->Stat(&ctx, req, &resp), absl::StrCat("snapshots.Stat ", key));
}

absl::Status SnapshotService::Remove(const CallScope& scope, const std::string& key) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  snapshots::RemoveSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(key);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Remove(&ctx, req, &resp), absl::StrCat("snapshots.Remove ", key));
}

DiffService::DiffService(const Connection& conn)
    : conn_(conn), stub_(api::services::diff::v1::Diff::NewStub(conn.channel())) {}

absl::StatusOr<api::types::Descriptor> DiffService::Apply(const CallScope& scope,
                                                          const api::types::Descriptor& diff,
                                                          const Mounts& mounts) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  api::services::diff::v1::ApplyRequest req;
  *req.mutable_diff() = diff;
  for (const auto& m : mounts) *req.add_mounts() = m;
  api::services::diff::v1::ApplyResponse resp;
  absl::Status s =
      FromGrpc(stub_->Apply(&ctx, req, &resp), absl::StrCat("diff.Apply ", diff.digest()));
  if (!s.ok()) return s;
  return resp.applied();
}

// ---- containers --------------------------------------------------------------------------------

ContainerStore::ContainerStore(const Connection& conn)
    : conn_(conn), stub_(containers::Containers::NewStub(conn.channel())) {}

absl::Status ContainerStore::Create(const CallScope& scope, const containers::Container& c) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  containers::CreateContainerRequest req;
  *req.mutable_container() = c;
  containers::CreateContainerResponse resp;
  return FromGrpc(stub_->Create(&ctx, req, &resp), absl::StrCat("containers.Create ", c.id()));
}

absl::StatusOr<containers::Container> ContainerStore::Get(const CallScope& scope,
                                                          const std::string& id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  containers::GetContainerRequest req;
  req.set_id(id);
  containers::GetContainerResponse resp;
  absl::Status s = FromGrpc(stub_->Get(&ctx, req, &resp), absl::StrCat("containers.Get ", id));
  if (!s.ok()) return s;
  return resp.container();
}

absl::StatusOr<std::vector<containers::Container>> ContainerStore::List(const CallScope& scope,
                                                                        const std::string& filter) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  containers::ListContainersRequest req;
  if (!filter.empty()) req.add_filters(filter);
  containers::ListContainersResponse resp;
  absl::Status s = FromGrpc(stub_->List(&ctx, req, &resp), "containers.List");
  if (!s.ok()) return s;
  return std::vector<containers::Container>(resp.containers().begin(), resp.containers().end());
}

absl::Status ContainerStore::SetLabels(const CallScope& scope, const std::string& id,
                                       const Labels& labels) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  containers::UpdateContainerRequest req;
  req.mutable_container()->set_id(id);
  for (const auto& [k, v] : labels) (*req.mutable_container()->mutable_labels())[k] = v;
  req.mutable_update_mask()->add_paths("labels");
  containers::UpdateContainerResponse resp;
  return FromGrpc(stub_->Update(&ctx, req, &resp), absl::StrCat("containers.Update ", id));
}

absl::Status ContainerStore::Delete(const CallScope& scope, const std::string& id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  containers::DeleteContainerRequest req;
  req.set_id(id);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Delete(&ctx, req, &resp), absl::StrCat("containers.Delete ", id));
}

// ---- tasks -------------------------------------------------------------------------------------

TaskService::TaskService(const Connection& conn)
    : conn_(conn), stub_(tasks::Tasks::NewStub(conn.channel())) {}

absl::StatusOr<uint32_t> TaskService::Create(const CallScope& scope,
                                             const std::string& container_id, const Mounts& rootfs,
                                             const TaskIo& io) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::CreateTaskRequest req;
  req.set_container_id(container_id);
  for (const auto& m : rootfs) *req.add_rootfs() = m;
  req.set_stdout(io.stdout_uri);
  req.set_stderr(io.stderr_uri);
  tasks::CreateTaskResponse resp;
  absl::Status s =
      FromGrpc(stub_->Create(&ctx, req, &resp), absl::StrCat("tasks.Create ", container_id));
  if (!s.ok()) return s;
  return resp.pid();
}

absl::StatusOr<uint32_t> TaskService::Start(const CallScope& scope,
                                            const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::StartRequest req;
  req.set_container_id(container_id);
  tasks::StartResponse resp;
  absl::Status s =
      FromGrpc(stub_->Start(&ctx, req, &resp), absl::StrCat("tasks.Start ", container_id));
  if (!s.ok()) return s;
  return resp.pid();
}

absl::StatusOr<api::v1::types::Process> TaskService::Get(const CallScope& scope,
                                                         const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::GetRequest req;
  req.set_container_id(container_id);
  tasks::GetResponse resp;
  absl::Status s = FromGrpc(stub_->Get(&ctx, req, &resp), absl::StrCat("tasks.Get ", container_id));
  if (!s.ok()) return s;
  return resp.process();
}

absl::StatusOr<std::vector<api::v1::types::Process>> TaskService::List(const CallScope& scope) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::ListTasksRequest req;
  tasks::ListTasksResponse resp;
  absl::Status s = FromGrpc(stub_->List(&ctx, req, &resp), "tasks.List");
  if (!s.ok()) return s;
  return std::vector<api::v1::types::Process>(resp.tasks().begin(), resp.tasks().end());
}

absl::Status TaskService::Kill(const CallScope& scope, const std::string& container_id, int signal,
                               bool all) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::KillRequest req;
  req.set_container_id(container_id);
  req.set_signal(static_cast<uint32_t>(signal));
  req.set_all(all);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Kill(&ctx, req, &resp), absl::StrCat("tasks.Kill ", container_id));
}

absl::Status TaskService::Pause(const CallScope& scope, const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::PauseTaskRequest req;
  req.set_container_id(container_id);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Pause(&ctx, req, &resp), absl::StrCat("tasks.Pause ", container_id));
}

absl::Status TaskService::Resume(const CallScope& scope, const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::ResumeTaskRequest req;
  req.set_container_id(container_id);
  google::protobuf::Empty resp;
  return FromGrpc(stub_->Resume(&ctx, req, &resp), absl::StrCat("tasks.Resume ", container_id));
}

absl::StatusOr<uint32_t> TaskService::Wait(const CallScope& scope,
                                           const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::WaitRequest req;
  req.set_container_id(container_id);
  tasks::WaitResponse resp;
  absl::Status s =
      FromGrpc(stub_->Wait(&ctx, req, &resp), absl::StrCat("tasks.Wait ", container_id));
  if (!s.ok()) return s;
  return resp.exit_status();
}

absl::Status TaskService::Delete(const CallScope& scope, const std::string& container_id) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::DeleteTaskRequest req;
  req.set_container_id(container_id);
  tasks::DeleteResponse resp;
  return FromGrpc(stub_->Delete(&ctx, req, &resp), absl::StrCat("tasks.Delete ", container_id));
}

absl::StatusOr<std::vector<TaskMetrics>> TaskService::Metrics(
    const CallScope& scope, const std::vector<std::string>& container_ids) {
  if (container_ids.empty()) return std::vector<TaskMetrics>();
  // containerd ORs the filters. Ids are containerd identifiers ([A-Za-z0-9_.-]); quoting keeps
  // anything else from being read as filter syntax.
  std::vector<std::string> filters;
  filters.reserve(container_ids.size());
  for (const std::string& id : container_ids) {
    std::string quoted;
    for (char c : id) {
      if (c == '"' || c == '\\') quoted.push_back('\\');
      quoted.push_back(c);
    }
    filters.push_back(absl::StrCat("id==\"", quoted, "\""));
  }
  return MetricsMatching(scope, filters,
                         container_ids.size() == 1
                             ? absl::StrCat("tasks.Metrics ", container_ids[0])
                             : absl::StrCat("tasks.Metrics of ", container_ids.size(),
                                            " containers (", container_ids[0], ", ...)"));
}

absl::StatusOr<std::vector<TaskMetrics>> TaskService::NamespaceMetrics(const CallScope& scope) {
  return MetricsMatching(scope, {}, absl::StrCat("tasks.Metrics in namespace ", scope.ns));
}

absl::StatusOr<TaskMetrics> TaskService::Metric(const CallScope& scope,
                                                const std::string& container_id) {
  absl::StatusOr<std::vector<TaskMetrics>> all = Metrics(scope, {container_id});
  if (!all.ok()) return all.status();
  for (TaskMetrics& m : *all) {
    if (m.container_id == container_id) return std::move(m);
  }
  return absl::NotFoundError(
      absl::StrCat("tasks.Metrics ", container_id, ": no task, or no stats for it"));
}

absl::StatusOr<std::vector<TaskMetrics>> TaskService::MetricsMatching(
    const CallScope& scope, const std::vector<std::string>& filters, absl::string_view what) {
  grpc::ClientContext ctx;
  conn_.Prepare(ctx, scope);
  tasks::MetricsRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  tasks::MetricsResponse resp;
  absl::Status s = FromGrpc(stub_->Metrics(&ctx, req, &resp), what);
  if (!s.ok()) return s;
  std::vector<TaskMetrics> out;
  out.reserve(resp.metrics_size());
  for (const api::types::Metric& metric : resp.metrics()) {
    absl::StatusOr<TaskMetrics> m = DecodeTaskMetrics(metric);
    if (!m.ok()) return m.status();
    out.push_back(*std::move(m));
  }
  return out;
}

// ---- events -------------------------------------------------------------------------------------

EventService::EventService(const Connection& conn)
    : conn_(conn), stub_(api::services::events::v1::Events::NewStub(conn.channel())) {}

absl::Status EventService::Subscribe(
    grpc::ClientContext& ctx, const std::vector<std::string>& filters,
    const std::function<bool(const api::services::events::v1::Envelope&)>& on_event) {
  api::services::events::v1::SubscribeRequest req;
  for (const auto& f : filters) req.add_filters(f);
  auto reader = stub_->Subscribe(&ctx, req);
  api::services::events::v1::Envelope envelope;
  while (reader->Read(&envelope)) {
    if (!on_event(envelope)) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (st.error_code() == grpc::StatusCode::CANCELLED) return absl::OkStatus();
  return FromGrpc(st, "events.Subscribe");
}

Client::Client(const std::string& address, const std::string& snapshotter)
    : connection(address),
      version(connection),
      namespaces(connection),
      leases(connection),
      content(connection),
      images(connection),
      snapshots(connection, snapshotter),
      diff(connection),
      containers(connection),
      tasks(connection),
      events(connection) {}

}  // namespace faasd::containerd
