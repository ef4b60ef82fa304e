#include "gameday/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace dynasim::gameday {

namespace {

constexpr double kWidth = 900, kHeight = 420;
constexpr double kLeft = 70, kRight = 250, kTop = 40, kBottom = 50;  // plot margins; legend right
// A palette that stays distinguishable for common colour-vision deficiencies (Okabe-Ito).
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                    "#56B4E9", "#000000", "#F0E442", "#999999", "#882255"};

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

std::string coordinate(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::vector<double> nice_ticks(double low, double high, int count) {
  if (!(high > low)) high = low + 1;
  const double raw = (high - low) / std::max(count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::floor(low / step) * step; t <= high + step * 1e-9 && ticks.size() < 64;
       t += step) {
    if (t >= low - step * 1e-9) ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

SvgChart::SvgChart(std::string title, std::string x_label, std::string y_label)
    : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)) {}

void SvgChart::add_series(std::string name, std::vector<std::pair<double, double>> points,
                          bool markers) {
  series_.push_back(Series{std::move(name), std::move(points), markers});
}

std::string SvgChart::render() const {
  double x_low = 0, x_high = 1, y_low = 0, y_high = 1;
  bool any = false;
  for (const Series& s : series_) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      if (!any) {
        x_low = x_high = x;
        y_high = y;
        any = true;
      }
      x_low = std::min(x_low, x);
      x_high = std::max(x_high, x);
      y_high = std::max(y_high, y);
    }
  }
  y_low = 0;
  if (!(x_high > x_low)) x_high = x_low + 1;
  if (!(y_high > y_low)) y_high = y_low + 1;
  const std::vector<double> x_ticks = nice_ticks(x_low, x_high, 8);
  const std::vector<double> y_ticks = nice_ticks(y_low, y_high * 1.05, 6);
  y_high = std::max(y_high, y_ticks.empty() ? y_high : y_ticks.back());
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x_low) / (x_high - x_low) * plot_w; };
  auto py = [&](double y) { return kTop + plot_h - (y - y_low) / (y_high - y_low) * plot_h; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << kWidth / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << xml_escape(title_) << "</text>\n";
  for (double t : x_ticks) {
    if (t < x_low || t > x_high) continue;
    svg << "<line x1=\"" << coordinate(px(t)) << "\" y1=\"" << coordinate(kTop) << "\" x2=\""
        << coordinate(px(t)) << "\" y2=\"" << coordinate(kTop + plot_h)
        << "\" stroke=\"#eee\"/><text x=\"" << coordinate(px(t)) << "\" y=\""
        << coordinate(kTop + plot_h + 16) << "\" text-anchor=\"middle\">" << number(t)
        << "</text>\n";
  }
  for (double t : y_ticks) {
    svg << "<line x1=\"" << coordinate(kLeft) << "\" y1=\"" << coordinate(py(t)) << "\" x2=\""
        << coordinate(kLeft + plot_w) << "\" y2=\"" << coordinate(py(t))
        << "\" stroke=\"#eee\"/><text x=\"" << coordinate(kLeft - 6) << "\" y=\""
        << coordinate(py(t) + 4) << "\" text-anchor=\"end\">" << number(t) << "</text>\n";
  }
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"#444\"/>\n";
  svg << "<text x=\"" << coordinate(kLeft + plot_w / 2) << "\" y=\"" << coordinate(kHeight - 10)
      << "\" text-anchor=\"middle\">" << xml_escape(x_label_) << "</text>\n";
  svg << "<text transform=\"translate(16," << coordinate(kTop + plot_h / 2)
      << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(y_label_) << "</text>\n";
  for (size_t i = 0; i < series_.size(); ++i) {
    const Series& s = series_[i];
    const char* colour = kColours[i % (sizeof kColours / sizeof kColours[0])];
    if (s.markers) {
      for (const auto& [x, y] : s.points) {
        svg << "<circle cx=\"" << coordinate(px(x)) << "\" cy=\"" << coordinate(py(y))
            << "\" r=\"5\" fill=\"" << colour << "\"/>\n";
      }
    } else if (!s.points.empty()) {
      svg << "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" << colour << "\" points=\"";
      for (const auto& [x, y] : s.points)
        svg << coordinate(px(x)) << "," << coordinate(py(y)) << " ";
      svg << "\"/>\n";
    }
    const double ly = kTop + 8 + 18.0 * static_cast<double>(i);
    svg << "<rect x=\"" << coordinate(kLeft + plot_w + 12) << "\" y=\"" << coordinate(ly - 8)
        << "\" width=\"10\" height=\"10\" fill=\"" << colour << "\"/><text x=\""
        << coordinate(kLeft + plot_w + 28) << "\" y=\"" << coordinate(ly + 1) << "\">"
        << xml_escape(s.name.size() > 34 ? s.name.substr(0, 33) + "…" : s.name) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace dynasim::gameday
