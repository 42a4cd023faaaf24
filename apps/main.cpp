// heinfer: encrypted inference of ONNX models with RNS-CKKS.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"heinfer: private DNN inference on RNS-CKKS ciphertexts"};
  app.require_subcommand(1);
  heinfer::apps::register_inspect(app);
  heinfer::apps::register_run(app);
  heinfer::apps::register_profile(app);
  heinfer::apps::register_ckks_demo(app);
  heinfer::apps::register_serve(app);
  heinfer::apps::register_client(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "heinfer: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
