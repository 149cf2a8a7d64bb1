# Creates $1/project.git (bare) holding a small Node project on main and a develop branch.
set -e
root=$1
mkdir -p "$root"
git init -q --bare -b main "$root/project.git"
git --git-dir="$root/project.git" config http.receivepack true
work=$(mktemp -d)
cd "$work"
git init -q -b main
git config user.email seed@example.test
git config user.name Seed
printf '{"name": "project", "version": "1.0.0", "scripts": {"test": "node test.js"}}\n' > package.json
printf 'const assert = require("assert");\nassert.strictEqual(1 + 1, 2);\nconsole.log("tests passed");\n' > test.js
git add -A
git commit -qm "initial project"
git checkout -qb develop
echo "develop branch" > DEVELOP.md
git add -A
git commit -qm "develop work"
git checkout -q main
git push -q "$root/project.git" main develop
rm -rf "$work"
