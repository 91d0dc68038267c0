// SPDX-License-Identifier: MIT
// Built with -fno-exceptions -fno-rtti (like the library): the provisioning API instantiated
// for both Token models, the board's SoftToken and ModuleToken.
#include <array>

#include <p11tls/board.hpp>
#include <p11tls/provision/provision.hpp>
#include <p11tls/token/module_token.hpp>

namespace provision_check {

namespace pv = p11tls::provision;

template <p11tls::Token T>
void every_function(T& t, CK_ULONG s) {
    std::array<std::byte, 4096> out;
    std::array<char, 2048> pem;
    (void)pv::generate_key(t, s);
    (void)pv::import_private_key(t, s, {});
    (void)pv::write_csr(t, s, {}, out);
    (void)pv::public_key_pem(t, s, 0, pem);
    (void)pv::import_certificate(t, s, {});
    (void)pv::import_root(t, s, {});
    (void)pv::destroy_objects(t, s, {});
    (void)pv::list_objects(t, s, [](const pv::ObjectInfo&) {});
}

template void every_function<p11tls::board::Token>(p11tls::board::Token&, CK_ULONG);
template void every_function<p11tls::ModuleToken>(p11tls::ModuleToken&, CK_ULONG);

}  // namespace provision_check
