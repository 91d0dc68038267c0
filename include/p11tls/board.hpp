// SPDX-License-Identifier: MIT
#pragma once
/// The selected board: `meson setup -Dboard=NAME` puts boards/NAME/ on the include path, and
/// this header includes its board.hpp. A board defines namespace p11tls::board with its
/// policies (Nvm, Entropy, Token, ...) and initialize().
#include <board.hpp>
