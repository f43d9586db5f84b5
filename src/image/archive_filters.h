// The compressions faasd reads tarballs in (an imported oci-archive, a builder's base layer):
// gzip, bzip2, xz and zstd, named one by one rather than with archive_read_support_filter_all, so
// a static link takes only those filters of libarchive and none of the libraries the others need
// (liblz4, for one, has no static archive in Debian). A tarball compressed otherwise fails to open
// with libarchive's "Unrecognized archive format".
#pragma once

#include <archive.h>

namespace faasd::image {

inline void SupportArchiveFilters(struct archive* a) {
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_zstd(a);
}

}  // namespace faasd::image
