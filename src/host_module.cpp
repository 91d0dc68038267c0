// SPDX-License-Identifier: MIT
// libp11tls-pkcs11.so: a hosted board's SoftToken as a PKCS#11 module (boards host and
// host-flash). The token lives where P11TLS_STORE says: the record files of the host board, or
// host-flash's flash image (see p11tls::board::store_directory for the default).
#include <p11tls/board.hpp>
#include <p11tls/cryptoki/module.hpp>

namespace {

struct HostProvider {
    using token_type = p11tls::board::Token;
    static p11tls::Result<token_type*> open() {
        auto t = p11tls::board::open_token();
        if (!t) return p11tls::fail(t.error());
        return t->release();
    }
    static void close(token_type* t) noexcept { delete t; }
};

using HostModule = p11tls::cryptoki::Module<HostProvider>;

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (!list) return CKR_ARGUMENTS_BAD;
    *list = HostModule::function_list();
    return CKR_OK;
}
