// A small SVG chart: line (or marker) series on linear axes with ticks and a legend, for reports
// that must stay self-contained (`dynasim plan` writes them into Markdown and HTML; no Python or
// network needed). Output depends only on the data, so reports are byte-for-byte reproducible.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dynasim::gameday {

class SvgChart {
 public:
  SvgChart(std::string title, std::string x_label, std::string y_label);

  // Points in the order given. `markers`: circles at each point instead of a line.
  void add_series(std::string name, std::vector<std::pair<double, double>> points,
                  bool markers = false);
  // The whole <svg> element, 900 x 420 px.
  std::string render() const;

 private:
  struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;
    bool markers = false;
  };
  std::string title_;
  std::string x_label_;
  std::string y_label_;
  std::vector<Series> series_;
};

// `text` with <, >, & and " replaced by their entities, for SVG and HTML text and attributes.
std::string xml_escape(const std::string& text);

// "Nice" tick values covering [low, high]: about `count` of them at 1, 2 or 5 times a power of ten.
std::vector<double> nice_ticks(double low, double high, int count);

}  // namespace dynasim::gameday
