// SPDX-License-Identifier: MIT
#pragma once
/// The PKCS#11 v2.40 types and constants (p11-kit's standalone header, standard names).
#include <p11-kit/pkcs11.h>
