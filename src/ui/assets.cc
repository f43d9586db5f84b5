#include "ui/assets.h"

namespace faasd::ui {

const Asset* FindAsset(absl::string_view path) {
  if (path.empty()) path = "index.html";
  for (const Asset& a : AllAssets()) {
    if (path == a.path) return &a;
  }
  return nullptr;
}

}  // namespace faasd::ui
