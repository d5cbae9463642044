#pragma once
// The report's stylesheet and script, written into the page inline.
namespace livs::report {

const char* page_style();
const char* page_script();

}  // namespace livs::report
