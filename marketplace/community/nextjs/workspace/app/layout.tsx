import type { Metadata } from "next";
import "./globals.css";

// System font stacks (globals.css): next/font/google would download fonts at build time, and a
// sandbox's build may have no route to Google's font servers.
export const metadata: Metadata = {
  title: "Next.js on VibeBox",
  description: "A Next.js 16 App Router starter",
};

export default function RootLayout({ children }: LayoutProps<"/">) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
