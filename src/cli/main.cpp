// msmedcap: the command-line entry point. Parses, dispatches to the subcommands and turns
// errors into one line on stderr: exit 0 ok, 1 error, 2 usage.
#include <csignal>
#include <iostream>

#include "commands.h"
#include "msmedcap/core/allocator.h"
#include "msmedcap/core/check.h"
#include "msmedcap/core/compat.h"
#include "msmedcap/core/components.h"
#include "msmedcap/core/error_text.h"
#include "msmedcap/core/logging.h"
#include "msmedcap/core/threads.h"

int main(int argc, char** argv) {
  using namespace msmedcap;
  CLI::App app{"msmedcap: MSMedCap-style medical image captioning (C++17 / LibTorch)", "msmedcap"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("msmedcap 0.1.0 (LibTorch ") + core::torch_version() +
                                        "; components: " + core::components_built() + ")");
  cli::GlobalOptions globals;
  globals.allocator = core::keep_freed_memory();
  app.add_option("--log-level", globals.log_level, "trace|debug|info|warn|error|off");
  app.add_option("--device", globals.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", globals.dtype,
                 "inference weights and activations: fp32, bf16, fp16 (CUDA), int8 or w8a8 (CPU decoding)");
  app.add_option("--threads", globals.threads, "intra-op CPU threads (0 = all cores)");

  cli::register_inspect(app, globals);
  cli::register_config(app, globals);
  cli::register_forward(app, globals);
  cli::register_synth(app, globals);
  cli::register_decode_image(app, globals);
  cli::register_tokenize(app, globals);
  cli::register_train_tokenizer(app, globals);
  cli::register_extract_features(app, globals);
  cli::register_bench(app, globals);
  cli::register_train(app, globals);
  cli::register_merge(app, globals);
  cli::register_evaluate(app, globals);
  cli::register_caption(app, globals);
  cli::register_retrieve(app, globals);
  cli::register_plot(app, globals);
  cli::register_report(app, globals);
  cli::register_baseline(app, globals);
  cli::register_nearest(app, globals);
  cli::register_compare(app, globals);
  cli::register_export(app, globals);

  // Past a file-size limit (ulimit -f), a write fails with EFBIG and the writer names the file,
  // instead of SIGXFSZ killing the process halfway through a checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit status (train: 130/143 after a signal)
  } catch (const CLI::ParseError& e) {
    std::cerr << "msmedcap: usage error: " << e.what() << " (see msmedcap --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "msmedcap: error: " << core::error_text(e) << "\n";
    return 1;
  }
  return 0;
}
