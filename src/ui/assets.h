// The portal's files (src/ui/assets/), embedded in the binary at build time by embed_assets.py.
// The table is immutable and built before main(); any thread may read it.
//
// Each asset has its path under /ui/ ("index.html", "js/app.js"), a Content-Type chosen from
// its extension (the build fails on an extension it does not know), a strong ETag (a quoted
// prefix of the content's SHA-256, so it changes exactly when the bytes do) and its bytes.
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace faasd::ui {

struct Asset {
  const char* path;
  const char* content_type;
  const char* etag;
  const unsigned char* data;
  size_t size;

  absl::string_view body() const {
    return absl::string_view(reinterpret_cast<const char*>(data), size);
  }
};

// Every embedded asset, in path order.
absl::Span<const Asset> AllAssets();

// The asset at `path` (relative to /ui/, no leading '/'); "" is index.html. nullptr when there
// is none.
const Asset* FindAsset(absl::string_view path);

}  // namespace faasd::ui
