// SPDX-License-Identifier: MIT
#pragma once
/// The Nvm concept: a persistent store of small records addressed by id.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// Identifies one record of an Nvm. Id 0 is valid; ids need not be dense.
using RecordId = std::uint32_t;

/// A persistent record store (file directory, flash, EEPROM, RAM for tests).
///
/// - `store(id, bytes)` creates or replaces a record atomically: after a power cut at any
///   instant the record holds its old or its new value and no other record changes.
///   A store that cannot fit returns `Errc::nvm_full` and changes nothing.
/// - `load(id, out)` copies the record into `out` and returns its length; `Errc::nvm_not_found`
///   if absent, `Errc::buffer_too_small` if `out` is too short, `Errc::nvm_corrupt` if its
///   checksum fails.
/// - `size(id)` returns a record's length without reading it.
/// - `remove(id)` deletes a record atomically (absent is not an error).
/// - `list(ids)` writes the ids of all records and returns their count
///   (`Errc::buffer_too_small` if `ids` cannot hold them all).
/// - `T::max_record_size` is the largest record the store accepts.
template <class T>
concept Nvm = requires(T& nvm, RecordId id, std::span<const std::byte> in,
                       std::span<std::byte> out, std::span<RecordId> ids) {
    { T::max_record_size } -> std::convertible_to<std::size_t>;
    { nvm.store(id, in) } -> std::same_as<Result<void>>;
    { nvm.load(id, out) } -> std::same_as<Result<std::size_t>>;
    { nvm.size(id) } -> std::same_as<Result<std::size_t>>;
    { nvm.remove(id) } -> std::same_as<Result<void>>;
    { nvm.list(ids) } -> std::same_as<Result<std::size_t>>;
};

}  // namespace p11tls
