// SPDX-License-Identifier: MIT
// Built with -fno-exceptions -fno-rtti: every public header must compile that way.
#include <p11tls/board.hpp>
#include <p11tls/concepts/entropy.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/concepts/token.hpp>
#include <p11tls/cryptoki/errors.hpp>
#include <p11tls/cryptoki/module.hpp>
#include <p11tls/concepts/noise_source.hpp>
#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/entropy/nv_seeded.hpp>
#include <p11tls/entropy/sim_trng.hpp>
#include <p11tls/nvm/file_nvm.hpp>
#include <p11tls/nvm/ram_nvm.hpp>
#include <p11tls/result.hpp>
#include <p11tls/token/soft_token.hpp>

static_assert(p11tls::Token<p11tls::board::Token>);
static_assert(p11tls::Token<p11tls::SoftToken<p11tls::RamNvm<>, p11tls::GetrandomEntropy>>);

// Instantiate the whole token so its bodies are compiled here too.
template class p11tls::SoftToken<p11tls::RamNvm<>, p11tls::GetrandomEntropy>;
#include <p11tls/token/template.hpp>
#include <p11tls/transport/memory_pipe.hpp>
#include <p11tls/transport/posix_tcp.hpp>
#include <p11tls/concepts/tls_stream.hpp>
#include <p11tls/tls/session.hpp>
template class p11tls::TlsSession<p11tls::board::Token, p11tls::PosixTcp, p11tls::board::Entropy>;
static_assert(p11tls::TlsStream<p11tls::TlsSession<p11tls::board::Token, p11tls::PosixTcp, p11tls::board::Entropy>>);
#include <p11tls/mqtt/client.hpp>
// The hardware-RNG composition a board names, compiled whole.
template class p11tls::HealthTested<p11tls::SimTrng<>>;
template class p11tls::NvSeeded<p11tls::HealthTested<p11tls::SimTrng<>>, p11tls::RamNvm<>>;
template class p11tls::SoftToken<p11tls::RamNvm<>, p11tls::NvSeeded<p11tls::HealthTested<p11tls::SimTrng<>>, p11tls::RamNvm<>>>;
