// Uses one function of the installed library, so that linking against it is exercised
// while the compile stays free of the heavy torch headers.
#include <diffuse/core/config_node.h>
#include <diffuse/version.h>

#include <iostream>

int main() {
  const std::string text = diffuse::format_double(0.25);
  std::cout << "diffuse " << DIFFUSE_VERSION << ": format_double(0.25) = " << text << "\n";
  return text == "0.25" ? 0 : 1;
}
