// SHA-256 digests and chain IDs, on OpenSSL's EVP interface.
#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "registry/auth.h"
#include "registry/registry.h"

namespace faasd::registry {

struct Sha256Hasher::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(state_->ctx); }

void Sha256Hasher::Update(std::string_view data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::string Sha256Hasher::Digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, md, &len);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), len)));
}

std::string Sha256Digest(std::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.Digest();
}

bool IsValidDigest(std::string_view digest) {
  std::string_view hex;
  size_t want = 0;
  if (absl::StartsWith(Av(digest), "sha256:")) {
    hex = digest.substr(7);
    want = 64;
  } else if (absl::StartsWith(Av(digest), "sha512:")) {
    hex = digest.substr(7);
    want = 128;
  } else {
    return false;
  }
  return hex.size() == want && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> chain;
  chain.reserve(diff_ids.size());
  for (const std::string& diff_id : diff_ids) {
    chain.push_back(chain.empty() ? diff_id
                                  : Sha256Digest(absl::StrCat(chain.back(), " ", diff_id)));
  }
  return chain;
}

}  // namespace faasd::registry
