#pragma once
/// What the `bench` subcommands share: each prints one line to stdout and, with --record FILE,
/// appends its figures as one JSON line that `msmedcap bench table FILE` turns into a table.

#include <CLI/CLI.hpp>

#include <string>

#include "commands.h"
#include "msmedcap/config/config_io.h"

namespace msmedcap::cli {

/// Appends `line` (one JSON object) to `file`; nothing when `file` is empty.
void append_record(const std::string& file, const config::Json& line);

/// Registers `bench matmul`, `bench train-step`, `bench generate` and `bench table` on `bench`.
void register_bench_model(CLI::App* bench, const GlobalOptions& globals);

/// Registers `bench random-checkpoint` and `bench load` (bench_load.cpp).
void register_bench_load(CLI::App* bench, const GlobalOptions& globals);

}  // namespace msmedcap::cli
