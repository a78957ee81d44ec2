// mime@3 ships no type declarations; the one call the skill makes.
declare module 'mime' {
  const mime: { getType(pathOrExtension: string): string | null };
  export default mime;
}
