#include "network/subnet.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace faasd::network {

absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("IPv4 address \"", text, "\": want four dotted numbers"));
  }
  uint32_t address = 0;
  for (absl::string_view part : parts) {
    uint32_t octet = 0;
    bool digits_only = !part.empty() && part.size() <= 3 &&
                       part.find_first_not_of("0123456789") == absl::string_view::npos;
    if (!digits_only || (part.size() > 1 && part[0] == '0') || !absl::SimpleAtoi(part, &octet) ||
        octet > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPv4 address \"", text, "\": bad octet \"", part, "\""));
    }
    address = (address << 8) | octet;
  }
  return address;
}

std::string FormatIpv4(uint32_t address) {
  return absl::StrCat((address >> 24) & 0xff, ".", (address >> 16) & 0xff, ".",
                      (address >> 8) & 0xff, ".", address & 0xff);
}

absl::StatusOr<Ipv4Subnet> Ipv4Subnet::Parse(absl::string_view cidr) {
  size_t slash = cidr.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", cidr, "\": want CIDR notation like 10.62.0.0/16"));
  }
  absl::StatusOr<uint32_t> address = ParseIpv4(cidr.substr(0, slash));
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", cidr, "\": ", address.status().message()));
  }
  absl::string_view length_text = cidr.substr(slash + 1);
  int length = 0;
  if (length_text.empty() || length_text.size() > 2 ||
      length_text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(length_text, &length) || length < 1 || length > 30) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subnet \"", cidr, "\": prefix length must be 1..30 (room for a gateway and a container)"));
  }
  Ipv4Subnet subnet(*address, length);
  if ((*address & subnet.mask()) != *address) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", cidr, "\": host bits are set; did you mean ",
                     FormatIpv4(*address & subnet.mask()), "/", length, "?"));
  }
  return subnet;
}

uint32_t Ipv4Subnet::mask() const {
  return prefix_length_ == 0 ? 0 : ~uint32_t{0} << (32 - prefix_length_);
}

bool Ipv4Subnet::Contains(absl::string_view address) const {
  absl::StatusOr<uint32_t> parsed = ParseIpv4(address);
  return parsed.ok() && Contains(*parsed);
}

std::string Ipv4Subnet::ToString() const {
  return absl::StrCat(FormatIpv4(network_), "/", prefix_length_);
}

}  // namespace faasd::network
