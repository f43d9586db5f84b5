// IPv4 subnet arithmetic for the CNI bridge network. An Ipv4Subnet is always normalised: the
// address is the network address (host bits zero), and it leaves room for at least a gateway and
// one container (prefix length 1..30). Private to src/network; the rest of the daemon sees only
// strings through cni_network.h.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace faasd::network {

// Parses dotted-quad "a.b.c.d" into a host-order integer; rejects anything else (leading
// zeros are refused because inet_aton would read them as octal).
absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text);
std::string FormatIpv4(uint32_t address);

class Ipv4Subnet {
 public:
  // "10.62.0.0/16". Host bits must be zero, so a typo like "10.62.0.1/16" is reported rather
  // than silently widened into a different network.
  static absl::StatusOr<Ipv4Subnet> Parse(absl::string_view cidr);

  uint32_t network() const { return network_; }
  int prefix_length() const { return prefix_length_; }
  uint32_t mask() const;
  // First usable host: the bridge's gateway address.
  uint32_t FirstHost() const { return network_ + 1; }
  uint32_t Broadcast() const { return network_ | ~mask(); }
  bool Contains(uint32_t address) const { return (address & mask()) == network_; }
  bool Contains(absl::string_view address) const;
  std::string ToString() const;  // "10.62.0.0/16"

 private:
  Ipv4Subnet(uint32_t network, int prefix_length)
      : network_(network), prefix_length_(prefix_length) {}
  uint32_t network_;
  int prefix_length_;
};

}  // namespace faasd::network
